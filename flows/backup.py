"""The backup flow: one Redis instance, one RDB snapshot (or a copy of its AOF files),
committed to the primary location and copied, verified, to every other location.

No `from __future__ import annotations` in flow modules (nor in tasks/). A runner
(`flow.serve`, a worker's in-memory flows) carries the flow function by value
(cloudpickle) to the process that runs it; that copy keeps only the globals its
body uses. Prefect validates parameters against the function's annotations, and
postponed annotations are strings resolved in those globals, where
`BackupRequest` is missing: every run from the UI failed with "`BackupModel` is
not fully defined". Evaluated annotations are the classes themselves and travel
with the function, whatever way it is shipped; resolving the strings by hand
would have to be repeated for every flow and every way Prefect loads one.
"""


from prefect import flow, get_run_logger
from prefect.states import Failed

from flows.backup_report import (
    BackupRun,
    copy_line,
    publish_artifact,
    server_line,
    snapshot_line,
)
from flows.lease import instance_lease
from flows.run_names import run_name_for
from redis_dr.catalog import Reservation
from redis_dr.config import BackupRequest
from redis_dr.errors import RedisDRError
from redis_dr.manifest import BackupKind, Manifest
from redis_dr.metrics.model import Operation, RunMetrics, RunTimer
from redis_dr.metrics.targets import MetricsTargets
from tasks.backup import (
    allocate_backup_id,
    check_redis,
    commit_manifest,
    copy_task,
    discard_uncommitted,
    snapshot_to_storage,
)
from tasks.metrics import report_metrics
from tasks.run_logs import RunLog, one_line_errors


@flow(name="redis-backup", flow_run_name=run_name_for("backup"), validate_parameters=True)
def backup(request: BackupRequest, metrics: MetricsTargets | None = None) -> Manifest:
    """Back up one Redis instance to its primary storage location, then copy it to every other.

    A failed run ends with its error's one line as the state message and leaves
    an artifact that says where it stopped. A failed copy does not stop the
    other copies, nor undo the committed primary backup. `metrics`: where the
    run's metrics go (empty: REDIS_DR_PUSHGATEWAY / REDIS_DR_TEXTFILE_DIR, if set).
    """
    one_line_errors()
    log = get_run_logger()
    run = BackupRun(request)
    timer = RunTimer()
    try:
        with instance_lease(request.environment, request.instance):
            manifest = back_up(run, log)
            copy_everywhere(run, manifest, log)
    except RedisDRError as exc:
        log.error("backup of %s failed at %s: %s", request.instance, run.step, exc)
        publish_artifact(run, error=str(exc))
        report_metrics(metrics, lambda: backup_metrics(run, timer), log)
        # Prefect takes a returned state as the run's final state: the UI shows this one
        # line (not "Flow run encountered an exception: ..."), and calling the flow still
        # raises `exc` itself, so the CLI keeps its exit code.
        return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
    except Exception as exc:  # a bug: the artifact says where, Prefect keeps the traceback
        publish_artifact(run, error=f"unexpected {type(exc).__name__}: {exc}")
        report_metrics(metrics, lambda: backup_metrics(run, timer), log)
        raise
    publish_artifact(run)
    report_metrics(metrics, lambda: backup_metrics(run, timer), log)
    return manifest


def backup_metrics(run: BackupRun, timer: RunTimer) -> list[RunMetrics]:
    """Per location: done (committed there, or copied and verified) or not; a success's size and keys."""
    request, manifest = run.request, run.manifest
    operation = Operation.AOF_BACKUP if request.kind is BackupKind.AOF else Operation.BACKUP
    metrics = []
    for location in run.locations:
        done = manifest is not None and not location.failed and location.outcome != "not attempted"
        metrics.append(timer.metrics(
            operation, request.environment, request.instance, location.url, succeeded=done,
            primary=location.primary,
            size_bytes=manifest.stored_size if done and manifest else None,
            key_count=manifest.source.total_keys if done and manifest else None,
        ))  # fmt: skip
    return metrics


def back_up(run: BackupRun, log: RunLog) -> Manifest:
    """Check the server, reserve an id, stream the snapshot and commit it in the primary location."""
    request = run.request
    primary = run.locations[0]
    log.info(
        "backing up %s from %s (%s, %s) to %d location(s), primary %s",
        request.instance, request.source(), request.how(), request.compression.value,
        len(run.locations), primary.url,
    )  # fmt: skip
    run.step = "check-redis"
    run.facts = check_redis(request)
    log.info("server: %s", server_line(run.facts))
    run.step = "reserve-id"
    reservation = allocate_backup_id(request)
    run.backup_id = reservation.backup_id
    log.info("backup id %s reserved in %s", run.backup_id, primary.url)
    run.step = "snapshot"
    primary.outcome = "snapshot not committed"
    try:
        snapshot = snapshot_to_storage(request, reservation)
        run.step = "commit"
        manifest = commit_manifest(request, snapshot)
    except RedisDRError:
        clean_up(run, reservation, log)
        raise
    run.manifest = manifest
    primary.outcome = f"committed {manifest.id}"
    log.info("snapshot: %s", snapshot_line(manifest))
    log.info("committed backup %s in %s (primary)", manifest.id, primary.url)
    return manifest


def clean_up(run: BackupRun, reservation: Reservation, log: RunLog) -> None:
    """After a failed snapshot or commit, remove what the run stored; a failure here is only logged."""
    primary = run.locations[0]
    try:
        removed = discard_uncommitted(run.request, reservation)
    except RedisDRError as exc:
        log.warning("could not remove the uncommitted data of %s from %s: %s", reservation.backup_id,
                    primary.url, exc)  # fmt: skip
        primary.outcome = f"not committed; its uncommitted data may remain: {exc}"
        return
    log.info("removed the uncommitted data of %s from %s (%d object(s))", run.backup_id, primary.url, removed)
    primary.outcome = "not committed; nothing left behind"


def copy_everywhere(run: BackupRun, manifest: Manifest, log: RunLog) -> None:
    """Copy the committed backup to every other location; raise once all were tried if any failed."""
    errors: list[RedisDRError] = []
    for position, (url, location) in enumerate(zip(run.request.storage, run.locations, strict=True), start=1):
        if location.primary:
            continue
        run.step = f"copy to {location.url}"
        try:
            outcome = copy_task(position)(run.request, manifest.id, url)
        except RedisDRError as exc:
            location.outcome, location.failed = f"FAILED: {exc}", True
            log.error("copy of backup %s to %s failed: %s", manifest.id, location.url, exc)
            errors.append(exc)
            continue
        location.outcome = copy_line(outcome)
        log.info("location %d %s: %s", position, location.url, location.outcome)
    if errors:
        failed = run.failed_copies
        run.step = "copy to " + ", ".join(location.url for location in failed)
        details = "; ".join(f"{location.url}: {exc}" for location, exc in zip(failed, errors, strict=True))
        raise type(errors[0])(
            f"backup {manifest.id} is committed in {run.locations[0].url}, but its copy to "
            f"{len(failed)} of {len(run.locations) - 1} other location(s) failed: {details}"
        )
