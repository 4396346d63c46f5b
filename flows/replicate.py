"""The replicate flow: copy every complete backup a destination lacks (what its policy keeps) to it.

Each copy is one `copy-backup` task (verified, manifest last, resumed when run
again), at most `request.parallel` at once. A failed copy or an unreachable
destination does not stop the others: the run fails at the end naming each
failure, each unreadable manifest at the source, and each destination that still
lags more than `max_lag`. No postponed annotations here (see flows/backup.py).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.backup_report import copy_line
from flows.lease import instance_lease
from flows.replicate_report import publish_artifact
from flows.run_names import run_name_for
from redis_dr.catalog import Listing
from redis_dr.copy import CopyOutcome
from redis_dr.errors import IntegrityError, NotFoundError, PermanentError, RedisDRError
from redis_dr.metrics.model import Operation, RunMetrics, RunTimer
from redis_dr.metrics.targets import MetricsTargets
from redis_dr.replicate import (
    DestinationResult,
    ReplicateRequest,
    ReplicateResult,
    destination_line,
    judge,
    lag_problem,
    missing_backups,
    plan_replication,
    replication_lag,
    seconds_of,
)
from redis_dr.storage.location import redact_url
from tasks.metrics import report_metrics
from tasks.replicate import copy_one_backup, list_backups
from tasks.run_logs import RunLog, one_line_errors, quiet_thread_timeout_note


@dataclass
class Replication:
    """One run's state: the source's listing, each destination's listing and plan, the errors met."""

    request: ReplicateRequest
    source: Listing
    now: datetime
    results: list[DestinationResult]
    listings: dict[int, Listing] = field(default_factory=dict)
    plans: dict[int, list[str]] = field(default_factory=dict)
    errors: list[RedisDRError] = field(default_factory=list)


@flow(name="redis-replicate", flow_run_name=run_name_for("replicate"), validate_parameters=True)
def replicate(request: ReplicateRequest, metrics: MetricsTargets | None = None) -> ReplicateResult:
    """Copy the backups each destination lacks; report copies, bytes and lag per destination.

    `metrics`: where the run's metrics go, per destination (empty: REDIS_DR_PUSHGATEWAY /
    REDIS_DR_TEXTFILE_DIR, if set).
    """
    one_line_errors()
    quiet_thread_timeout_note()
    log = get_run_logger()
    timer = RunTimer()
    try:
        with instance_lease(request.environment, request.instance):
            run = plan(request, log)
            copy_all(run, log)
            result = finish(run, log)
    except RedisDRError as exc:
        log.error("replication of %s failed: %s", request.instance, exc)
        publish_artifact(request, None, error=str(exc))
        report_metrics(metrics, lambda: replicate_metrics(request, None, timer), log)
        # A returned state is the run's final state; calling the flow raises exc (see flows/backup.py).
        return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
    except Exception as exc:  # a bug: the artifact says so, Prefect keeps the traceback
        publish_artifact(request, None, error=f"unexpected {type(exc).__name__}: {exc}")
        report_metrics(metrics, lambda: replicate_metrics(request, None, timer), log)
        raise
    publish_artifact(request, result)
    report_metrics(metrics, lambda: replicate_metrics(request, result, timer), log)
    if result.problems:
        failure = failed_run(run, result)
        log.error("%s", failure)
        return Failed(message=str(failure), data=failure)  # type: ignore[return-value]
    return result


def replicate_metrics(
    request: ReplicateRequest, result: ReplicateResult | None, timer: RunTimer
) -> list[RunMetrics]:
    """Per destination: replicated (nothing failed there, lag within the limit) or not, and its lag.

    Unreadable manifests at the source fail every destination (their backups were not copied).
    """
    limit = seconds_of(request.max_lag) if request.max_lag is not None else None
    metrics = []
    for position, destination in enumerate(request.destinations):
        location = redact_url(destination.url)
        if result is None:
            metrics.append(timer.metrics(
                Operation.REPLICATE, request.environment, request.instance, location, succeeded=False,
                max_lag_seconds=limit,
            ))  # fmt: skip
            continue
        there = result.destinations[position]
        done = not there.failed and not result.unreadable and lag_problem(there, request.max_lag) is None
        metrics.append(timer.metrics(
            Operation.REPLICATE, request.environment, request.instance, location, succeeded=done,
            lag_seconds=there.lag_after_seconds, max_lag_seconds=limit,
        ))  # fmt: skip
    return metrics


def plan(request: ReplicateRequest, log: RunLog) -> Replication:
    """List the source and every destination; decide what each one receives."""
    source = list_backups(request.source, request.instance)
    log.info("source %s: %d complete backup(s) of %s", redact_url(request.source), len(source.manifests),
             request.instance)  # fmt: skip
    for problem in source.unreadable:
        log.error("unreadable at the source, not copied: %s", problem)
    if not source.manifests and not source.unreadable:  # a mistyped --storage or --instance, or no backup yet
        raise NotFoundError(
            f"no backups of instance {request.instance} in {redact_url(request.source)}: nothing to "
            "replicate (check the source location and the instance name)"
        )
    run = Replication(
        request=request,
        source=source,
        now=datetime.now(UTC),
        results=[
            DestinationResult(url=redact_url(d.url), policy=d.policy.describe() if d.policy else None)
            for d in request.destinations
        ],
    )
    for position, destination in enumerate(request.destinations):
        result = run.results[position]
        try:
            listing = list_backups(destination.url, request.instance)
        except RedisDRError as exc:
            result.failed.append(f"could not be listed: {exc}")
            run.errors.append(exc)
            log.error("%s could not be listed: %s", result.url, exc)
            continue
        run.listings[position] = listing
        result.unreadable = list(listing.unreadable)
        for problem in listing.unreadable:
            log.warning("unreadable at %s (a copy under its id is refused): %s", result.url, problem)
        run.plans[position] = plan_replication(source, listing, destination.policy, run.now)
        result.missing = len(missing_backups(source, listing))
        result.planned = len(run.plans[position])
        result.lag_before_seconds = seconds_of(replication_lag(source.manifests, listing.manifests, run.now))
        log.info("%s lacks %d backup(s); copying %d", result.url, result.missing, result.planned)
    return run


def copy_all(run: Replication, log: RunLog) -> None:
    """One `copy-backup` task per (destination, backup), oldest first, at most `parallel` at once."""
    request = run.request
    jobs = sorted((backup_id, position) for position, ids in run.plans.items() for backup_id in ids)
    if not jobs:
        return
    runner: ThreadPoolTaskRunner[CopyOutcome] = ThreadPoolTaskRunner(max_workers=request.parallel)
    with runner:
        futures = [
            (position, backup_id, runner.submit(copy_one_backup, {
                "source_url": request.source,
                "destination_url": request.destinations[position].url,
                "instance": request.instance,
                "backup_id": backup_id,
            }))
            for backup_id, position in jobs
        ]  # fmt: skip
        for position, backup_id, future in futures:
            result = run.results[position]
            try:
                outcome: CopyOutcome = future.result()
            except RedisDRError as exc:
                result.failed.append(f"copy of {backup_id} failed: {exc}")
                run.errors.append(exc)
                log.error("copy of %s to %s failed: %s", backup_id, result.url, exc)
                continue
            if outcome.status == "already-present":
                result.already_present.append(backup_id)
            else:
                result.copied.append(backup_id)
                result.bytes += outcome.bytes
            log.info("%s to %s: %s", backup_id, result.url, copy_line(outcome))


def finish(run: Replication, log: RunLog) -> ReplicateResult:
    """Each destination's lag after copying, the lines for people, and the verdict."""
    by_id = {manifest.id: manifest for manifest in run.source.manifests}
    for position, listing in run.listings.items():
        result = run.results[position]
        arrived = [by_id[backup_id] for backup_id in [*result.copied, *result.already_present]]
        lag = replication_lag(run.source.manifests, [*listing.manifests, *arrived], run.now)
        result.lag_after_seconds = seconds_of(lag)
    request = run.request
    outcome = ReplicateResult(
        instance=request.instance,
        source=redact_url(request.source),
        source_backups=len(run.source.manifests),
        unreadable=list(run.source.unreadable),
        max_lag_seconds=seconds_of(request.max_lag) if request.max_lag is not None else None,
        destinations=run.results,
    )
    outcome.problems = judge(outcome, request.max_lag)
    for destination in run.results:
        log.info("%s", destination_line(destination))
    return outcome


def failed_run(run: Replication, result: ReplicateResult) -> RedisDRError:
    """One error naming every problem, of the kind of the first one named (its exit code)."""
    kind: type[RedisDRError] = PermanentError  # a lag over the limit, and nothing else
    if result.unreadable:
        kind = IntegrityError  # named first, as `redis-dr list` exits 5 on an unreadable manifest
    elif run.errors:
        kind = type(run.errors[0])
    return kind(
        f"replication of {result.instance} from {result.source} failed: " + "; ".join(result.problems)
    )
