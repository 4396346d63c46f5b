"""The RTO drill flow: kill the target, restore its latest backup, verify, and time it.

Refused on a protected environment before anything is touched. Under the
instance's lease and the restore's target lock: the plan (from the restore's own
preflight of the running target) is logged before the kill; then a marker key
and the key counts, the kill (the RTO clock starts), the restore by the restore
flow's machinery without a checkpoint (file: stage, place, start, load, verify;
replay: start the killed target again, then replay with flush), the counts
again, and the figures kept beside the backups with the trend of the last drills.

The run fails (one line) when the RTO is over the target, when the data is not
the backup's, or when the restore failed; then the line says that the target may
be down and how to restore it by hand. No postponed annotations here (see
flows/backup.py).
"""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed

from flows.lease import instance_lease
from flows.restore import carry_out, deployed_as_protected, lock_name
from flows.restore_report import RestoreRun
from flows.run_names import run_name_for
from redis_dr.drill.history import DrillRecord, History, record_key, trend
from redis_dr.drill.measure import (
    DrillDataError,
    DrillFailedError,
    DrillOverTargetError,
    failures,
    format_seconds,
    phase_rows,
    recovery_point,
)
from redis_dr.drill.plan import DrillPlan, make_plan, restore_request
from redis_dr.drill.report import DrillOutcome, markdown
from redis_dr.drill.request import DrillRequest
from redis_dr.errors import PermanentError, RedisDRError, RefusedError, reworded
from redis_dr.manifest import backup_id_for
from redis_dr.metrics.model import Operation, RunMetrics, RunTimer
from redis_dr.metrics.targets import MetricsTargets
from redis_dr.platforms.base import check_tag
from redis_dr.restore.plan import new_tag
from redis_dr.restore.preflight import explain_refusal
from redis_dr.restore.request import RestoreRequest, RestoreStrategy
from redis_dr.restore.target_lock import target_lock
from redis_dr.storage.location import redact_url
from tasks.drill import (
    count_keys,
    kill_target,
    mark_and_count,
    read_drill_history,
    record_drill,
    start_target,
)
from tasks.metrics import report_metrics
from tasks.restore import VerificationError, choose_backup_task, preflight
from tasks.run_logs import RunLog, one_line_errors


class DrillAbortedError(PermanentError):
    """The drill stopped before its figures were complete, for a cause whose error type carries
    more than a message (e.g. a replay's VerificationError); keeps the cause's exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.exit_code))


@dataclass
class DrillRun:
    """How far a drill got and what it measured on the way."""

    request: DrillRequest
    tag: str
    step: str = "start"
    plan: DrillPlan | None = None
    restore: RestoreRequest | None = None
    restore_run: RestoreRun | None = None
    killed_at: datetime | None = None
    keys_before: dict[int, int] = field(default_factory=dict)
    #: The restore verified: the target runs with the backup's data.
    recovered: bool = False
    outcome: DrillOutcome | None = None

    @property
    def killed(self) -> bool:
        """The target was killed (or the kill began)."""
        return self.killed_at is not None

    def where(self) -> str:
        """The step, with the restore's own step inside it."""
        inner = self.restore_run.step if self.restore_run is not None and self.step == "restore" else None
        return f"{self.step} ({inner})" if inner and inner != "start" else self.step


@flow(name="redis-drill", flow_run_name=run_name_for("drill"), validate_parameters=True)
def drill(request: DrillRequest, metrics: MetricsTargets | None = None) -> DrillOutcome:
    """Kill the target, restore its latest backup, verify, and measure RTO and RPO against the target.

    Never on a protected environment. A failed drill ends Failed with one line; after a
    failed restore that line says the target may be down and how to restore it by hand.
    `metrics`: where the RTO, RPO and verdict go (empty: REDIS_DR_PUSHGATEWAY / REDIS_DR_TEXTFILE_DIR).
    """
    one_line_errors()
    log = get_run_logger()
    timer = RunTimer()
    run = DrillRun(request, tag=check_tag(new_tag()))
    try:
        if request.protected or deployed_as_protected():
            raise RefusedError(
                f"environment {request.environment or '(unnamed)'} is protected: a drill kills the server, "
                "so it is refused there; nothing was touched"
            )
        run.restore = restore_request(request)
        with target_lock(lock_name(run.restore)), instance_lease(request.environment, request.instance):
            outcome = _drill(run, log)
    except RedisDRError as exc:
        failure = _explained(run, exc)
        log.error("%s", failure)
        if run.killed:
            _record_failure(run, str(failure), log)
        _publish(run, error=str(failure))
        if run.killed:  # a refusal before the kill is no drill: the last drill's figures stand
            report_metrics(metrics, lambda: [drill_metrics(request, None, timer)], log)
        return Failed(message=str(failure), data=failure)  # type: ignore[return-value]
    except Exception as exc:  # a bug: the artifact says where, Prefect keeps the traceback
        _publish(run, error=f"unexpected {type(exc).__name__} at {run.where()}: {exc}")
        raise
    _publish(run)
    report_metrics(metrics, lambda: [drill_metrics(request, outcome, timer)], log)
    if not outcome.passed:
        point = outcome.recovery_point
        kind = DrillOverTargetError if point is not None and point.marker_gone else DrillDataError
        error = kind(outcome.verdict(), outcome)
        log.error("%s", error)
        return Failed(message=str(error), data=error)  # type: ignore[return-value]
    return outcome


def drill_metrics(request: DrillRequest, outcome: DrillOutcome | None, timer: RunTimer) -> RunMetrics:
    """The drill's verdict, RTO, RPO and keys lost, at the location its history is kept in."""
    point = outcome.recovery_point if outcome is not None else None
    return timer.metrics(
        Operation.DRILL, request.environment, request.instance, redact_url(request.storage[0]),
        succeeded=outcome is not None and outcome.passed,
        rto_seconds=outcome.rto_seconds if outcome is not None else None,
        rto_target_seconds=request.rto_target.total_seconds(),
        rpo_seconds=max(point.backup_age_seconds, 0.0) if point is not None else None,
        lost_keys=max(point.total_lost, 0) if point is not None else None,
    )  # fmt: skip


def _drill(run: DrillRun, log: RunLog) -> DrillOutcome:
    """Plan, mark, kill, restore, count, record."""
    request, tag = run.request, run.tag
    assert run.restore is not None
    run.step = "choose-backup"
    source = choose_backup_task(run.restore)
    pinned = run.restore = restore_request(request, backup=source.manifest.id)  # what is shown is restored
    run.step = "preflight"
    restore_plan, _ = preflight(pinned, source, tag)
    run.plan = plan = make_plan(request, restore_plan, datetime.now(UTC))
    for line in plan.lines():
        log.info("%s", line)
    if plan.refusals:
        raise RefusedError(explain_refusal(restore_plan).replace("restore refused", "drill refused", 1))

    run.step = "mark-and-count"
    run.keys_before = mark_and_count(pinned, tag)
    restore_run = run.restore_run = RestoreRun(pinned, tag=tag)
    clock = restore_run.clock
    run.step = "kill"
    run.killed_at = datetime.now(UTC)
    started = time.monotonic()
    with clock.phase("kill"):
        kill_target(pinned)
    log.warning("killed %s (SIGKILL) at %s UTC: the RTO clock runs", plan.target, f"{run.killed_at:%H:%M:%S}")
    if request.strategy is RestoreStrategy.REPLAY:
        run.step = "restart"
        with clock.phase("restart"):
            start_target(pinned)
        log.info("started the killed target again (with what its disk held); replaying the backup into it")
    run.step = "restore"
    restore_run.step = "choose-backup"
    with clock.phase("find"):
        source = choose_backup_task(pinned)
    restore_run.step = "preflight"
    with clock.phase("preflight"):
        after_kill, placement = preflight(pinned, source, tag)
    restore_run.plan = after_kill
    if after_kill.refusals:
        raise RefusedError(explain_refusal(after_kill))
    restored = carry_out(restore_run, source, after_kill, placement, started, log)
    rto = restored.recovery_seconds
    run.recovered = True

    run.step = "count-keys"
    keys_after, marker_there = count_keys(pinned, tag)
    point = recovery_point(
        backup_created_at=source.manifest.created_at,
        killed_at=run.killed_at,
        before=run.keys_before,
        after=keys_after,
        marker_gone=not marker_there,
    )
    problems = failures(rto_seconds=rto, rto_target_seconds=plan.rto_target_seconds, point=point)
    for name, seconds in phase_rows(restored.phases):
        log.info("%-10s %8.2f s", name, seconds)
    log.info("RTO %s (target %s); RPO %s, %d key(s) lost", format_seconds(rto),
             format_seconds(plan.rto_target_seconds), format_seconds(point.backup_age_seconds),
             point.total_lost)  # fmt: skip

    run.step = "history"
    storage = request.storage[0]
    history = read_drill_history(storage, request.instance)
    compared = trend(rto, history.records)
    record = record_drill(
        storage,
        DrillRecord(
            id=backup_id_for(run.killed_at),
            instance=request.instance,
            environment=request.environment,
            target=plan.target,
            strategy=plan.strategy,
            backup_id=source.manifest.id,
            backup_created_at=source.manifest.created_at,
            killed_at=run.killed_at,
            rto_seconds=rto,
            rto_target_seconds=plan.rto_target_seconds,
            phases=dict(restored.phases),
            rpo_seconds=point.backup_age_seconds,
            keys_before=point.keys_before,
            keys_after=point.keys_after,
            keys_lost=point.total_lost,
            marker_gone=point.marker_gone,
            passed=not problems,
            failure="; ".join(problems) or None,
            regression=compared.regression,
            median_before=compared.median_before,
        ),
    )
    log.info("%s", compared.line(rto))
    for line in history.unreadable:
        log.warning("drill history: %s", line)
    run.outcome = DrillOutcome(
        tag=tag,
        instance=request.instance,
        environment=request.environment,
        target=plan.target,
        strategy=plan.strategy,
        backup_id=source.manifest.id,
        killed_at=run.killed_at,
        phases=dict(restored.phases),
        rto_seconds=rto,
        rto_target_seconds=plan.rto_target_seconds,
        recovery_point=point,
        verification=restored.verification,
        passed=not problems,
        failures=problems,
        trend=compared,
        record_key=record_key(request.instance, record.id),
        history=[record, *history.records],
        unreadable=history.unreadable,
        aside=restored.aside,
    )
    log.info("%s", run.outcome.verdict())
    return run.outcome


def hand_restore_hint(run: DrillRun) -> str:
    """How to bring the target back by hand after a failed drill."""
    request = run.request
    backup = run.plan.backup_id if run.plan is not None else "latest"
    storage = redact_url(request.storage[0])
    return (
        f"the target may be down: restore it by hand with `redis-dr restore --storage '{storage}' "
        f"--instance {request.instance} --target {request.target} --backup {backup} --no-checkpoint --yes`"
    )


def _explained(run: DrillRun, exc: RedisDRError) -> RedisDRError:
    """The error as one line saying where the drill stopped and what state the target is in."""
    if isinstance(exc, DrillFailedError):
        return exc
    if not run.killed:
        untouched = "nothing was touched" in str(exc)
        note = "" if untouched else "; nothing was touched (the target was not killed)"
        return _same_kind(exc, f"drill of {run.request.instance} stopped at {run.where()}: {exc}{note}")
    if isinstance(exc, VerificationError) and run.restore_run is not None:
        run.restore_run.report = exc.report
    if run.recovered:
        return _same_kind(
            exc,
            f"drill of {run.request.instance} stopped at {run.where()}: {exc}; the target was restored and "
            "verified, but the drill's figures are incomplete",
        )
    return _same_kind(
        exc,
        f"drill of {run.request.instance} FAILED at {run.where()} after the kill: {exc}; "
        + hand_restore_hint(run),
    )


def _same_kind(exc: RedisDRError, message: str) -> RedisDRError:
    """An error of the same type as `exc` (so the same exit code) with this message; when that type
    carries more than a message, a DrillAbortedError with its exit code."""
    return reworded(exc, message) or DrillAbortedError(message, exit_code=exc.exit_code)


def _record_failure(run: DrillRun, failure: str, log: RunLog) -> None:
    """Keep a failed drill's figures too (best effort: a failure here is only logged)."""
    request = run.request
    assert run.killed_at is not None
    phases = dict(run.restore_run.clock.seconds) if run.restore_run else {}
    record = DrillRecord(
        id=backup_id_for(run.killed_at),
        instance=request.instance,
        environment=request.environment,
        target=run.plan.target if run.plan else request.target,
        strategy=request.strategy.value,
        backup_id=run.plan.backup_id if run.plan else "unknown",
        backup_created_at=run.plan.backup_created_at if run.plan else run.killed_at,
        killed_at=run.killed_at,
        rto_target_seconds=request.rto_target.total_seconds(),
        phases=phases,
        keys_before=run.keys_before,
        passed=False,
        failure=failure,
    )
    history = History()
    try:
        history = read_drill_history(request.storage[0], request.instance)
        record = record_drill(request.storage[0], record)
        key: str | None = record_key(request.instance, record.id)
    except RedisDRError as exc:
        log.warning("could not keep the failed drill's figures in the history: %s", exc)
        key = None
    run.outcome = DrillOutcome(
        tag=run.tag,
        instance=request.instance,
        environment=request.environment,
        target=record.target,
        strategy=record.strategy,
        backup_id=record.backup_id,
        killed_at=run.killed_at,
        phases=phases,
        rto_target_seconds=record.rto_target_seconds,
        verification=run.restore_run.report if run.restore_run else None,
        failures=[failure],
        record_key=key,
        history=[record, *history.records] if key else history.records,
        unreadable=history.unreadable,
    )


def _publish(run: DrillRun, *, error: str | None = None) -> None:
    """The run's artifact: verdict first, phases, recovery point, verification, history, plan."""
    request = run.request
    outcome = run.outcome or DrillOutcome(
        tag=run.tag,
        instance=request.instance,
        environment=request.environment,
        target=request.target,
        strategy=request.strategy.value,
        rto_target_seconds=request.rto_target.total_seconds(),
    )
    create_markdown_artifact(
        markdown=markdown(outcome, run.plan, error=error),
        key=f"drill-{request.instance}".replace("_", "-").replace(".", "-"),
        description=f"drill {run.tag} of {request.instance}",
    )
