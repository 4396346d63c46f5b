"""The restore flow: choose the backup, preflight and plan, approval, checkpoint, restore, verify.

By file: stage the backup in the target's data directory while it runs, then
stop, swap, start and verify (rolled back on any failure). By replay: write the
backup's keys into the live server. Either way the plan is logged and kept in
the artifact before the target is touched. No postponed annotations here (see
flows/backup.py).
"""

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Failed
from pydantic import Field

from flows.lease import instance_lease
from flows.restore_report import RestoreOutcome, RestoreRun, phase_lines, publish_artifact, verification_lines
from flows.run_names import run_name_for
from redis_dr.errors import RedisDRError, RefusedError, reworded
from redis_dr.metrics.model import Operation, RunMetrics, RunTimer
from redis_dr.metrics.targets import MetricsTargets
from redis_dr.platforms.base import aside_dir, check_tag
from redis_dr.redis.connection import redact_redis_url
from redis_dr.restore.placement import Placement
from redis_dr.restore.plan import RestorePlan, new_tag
from redis_dr.restore.preflight import explain_refusal
from redis_dr.restore.request import RestoreRequest, RestoreStrategy
from redis_dr.restore.source import SourceRef
from redis_dr.restore.target_lock import target_lock
from redis_dr.run_tags import PROTECTED_TAG
from tasks.metrics import report_metrics
from tasks.restore import (
    VerificationError,
    checkpoint,
    choose_backup_task,
    discard_staging,
    preflight,
    replay_into_target,
    stage_backup,
    swap_and_start,
)
from tasks.restore_access import target_platform
from tasks.run_logs import one_line_errors

#: Steps that fail with the target as it was: nothing is stopped or moved before "stop".
UNTOUCHED_STEPS = ("choose-backup", "preflight", "approval", "lease", "checkpoint", "fetch")
#: How often a paused restore asks the server whether a person resumed it.
APPROVAL_POLL_SECONDS = 2


class RestoreApproval(RunInput):
    """The form a person fills in to let a protected restore go on."""

    approve: bool = Field(default=False, description="Tick to approve the restore plan shown above.")
    note: str = Field(default="", description="Who approves, and why (kept in the run's log).")


@flow(name="redis-restore", flow_run_name=run_name_for("restore"), validate_parameters=True)
def restore(
    request: RestoreRequest,
    approved: bool = False,
    tag: str | None = None,
    metrics: MetricsTargets | None = None,
) -> RestoreOutcome:
    """Restore a backup into a target, verified; a failure leaves the target as it was.

    `approved`: a person already approved this plan (the CLI asks on the terminal).
    A protected environment's run that is not approved pauses for approval.
    `tag` names the restore's staging and aside directories (default: its UTC start, `new_tag`).
    `metrics`: where the run's metrics go (empty: REDIS_DR_PUSHGATEWAY / REDIS_DR_TEXTFILE_DIR).
    """
    one_line_errors()
    log = get_run_logger()
    started = time.monotonic()
    timer = RunTimer()
    run = RestoreRun(request, tag=check_tag(tag or new_tag()))
    try:
        with target_lock(lock_name(request)):
            outcome = _restore(run, approved, started, log)
    except RedisDRError as exc:
        if isinstance(exc, VerificationError):
            run.report = exc.report
        if run.step in UNTOUCHED_STEPS and "nothing was touched" not in str(exc):
            exc = reworded(exc, f"{exc}; the target was not touched") or exc  # the CLI's line says so too
        log.error("restore of %s failed at %s: %s", request.instance, run.step, exc)
        publish_artifact(run, error=str(exc))
        report_metrics(metrics, lambda: [restore_metrics(run, timer, None)], log)
        return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
    except Exception as exc:
        publish_artifact(run, error=f"unexpected {type(exc).__name__}: {exc}")
        report_metrics(metrics, lambda: [restore_metrics(run, timer, None)], log)
        raise
    publish_artifact(run, recovery=outcome.recovery_seconds)
    report_metrics(metrics, lambda: [restore_metrics(run, timer, outcome)], log)
    return outcome


def restore_metrics(run: RestoreRun, timer: RunTimer, outcome: RestoreOutcome | None) -> RunMetrics:
    """The restore of the instance (not of one location): done or not; a success's size and keys."""
    done = outcome is not None
    request = run.request
    return timer.metrics(
        Operation.RESTORE, request.environment, request.instance, succeeded=done,
        size_bytes=run.plan.backup.raw_size if done and run.plan is not None else None,
        key_count=outcome.verification.keys_loaded if outcome is not None else None,
    )  # fmt: skip


def deployed_as_protected() -> bool:
    """True for a run of a deployment tagged `protected`: its form cannot switch the approval off
    (a run's tags include its deployment's, whatever the form says)."""
    context = FlowRunContext.get()
    return context is not None and context.flow_run is not None and PROTECTED_TAG in context.flow_run.tags


def lock_name(request: RestoreRequest) -> str:
    """What the restore's lock is named after: the target however it is spelled (the config file's
    real path, the container's id), else the live server's address."""
    platform = target_platform(request)
    if platform is not None:
        return platform.identity()
    url = request.target or request.redis_url
    assert url is not None
    return redact_redis_url(url)


def _restore(run: RestoreRun, approved: bool, started: float, log: Any) -> RestoreOutcome:
    request, clock = run.request, run.clock
    run.step = "choose-backup"
    with clock.phase("find"):
        source = choose_backup_task(request)
    run.step = "preflight"
    with clock.phase("preflight"):
        plan, placement = preflight(request, source, run.tag)
    run.plan = plan
    if approved:  # the person saw it before approving; the artifact keeps it
        log.info(
            "plan %s approved before the run: %d checks, %d steps",
            plan.tag,
            len(plan.checks),
            len(plan.steps),
        )
    else:
        for line in plan.lines():
            log.info("%s", line)
    if plan.refusals:
        raise RefusedError(explain_refusal(plan))
    if (request.protected or deployed_as_protected()) and not approved:
        run.step = "approval"
        with clock.phase("approval"):
            wait_for_approval(plan, request, log)
    run.step = "lease"
    with instance_lease(request.environment, request.instance):
        return carry_out(run, source, plan, placement, started, log)


def carry_out(
    run: RestoreRun,
    source: SourceRef,
    plan: RestorePlan,
    placement: Placement | None,
    started: float,
    log: Any,
) -> RestoreOutcome:
    """Checkpoint, restore, verify: the steps that touch the target, under the instance's lease."""
    request, clock = run.request, run.clock
    if plan.checkpoint:
        run.step = "checkpoint"
        with clock.phase("checkpoint"):
            run.checkpoint = checkpoint(request, run.tag)
        log.info("checkpoint: backup %s of the previous data (label pre-restore)", run.checkpoint.id)
    if request.effective_strategy is RestoreStrategy.FILE:
        assert placement is not None
        restore_by_file(run, source, placement, log)
    else:
        restore_by_replay(run, source, log)
    recovery = time.monotonic() - started
    for line in phase_lines(clock.seconds, recovery):
        log.info("%s", line)
    assert run.report is not None
    return RestoreOutcome(
        tag=run.tag,
        instance=request.instance,
        backup_id=source.manifest.id,
        strategy=plan.strategy,
        target=plan.target.description,
        checkpoint_id=run.checkpoint.id if run.checkpoint else None,
        aside=f"{plan.target.data_dir}/{aside_dir(run.tag)}" if run.moved_aside else None,
        phases=dict(clock.seconds),
        recovery_seconds=recovery,
        verification=run.report,
    )


def restore_by_file(run: RestoreRun, source: SourceRef, placement: Placement, log: Any) -> None:
    """Stage, then stop / swap / start / verify (rolled back inside on failure)."""
    request, clock = run.request, run.clock
    run.step = "fetch"
    with clock.phase("fetch"):
        sample = stage_backup(request, source, placement, run.tag)
    log.info("staged %d file(s) in the target's data directory; stopping it", len(placement.files))
    run.step = "stop, place, load, verify"
    try:
        result = swap_and_start(request, source, placement, run.tag, sample)
    finally:
        try:
            discard_staging(request, run.tag)
        except RedisDRError as exc:
            log.warning("could not remove the staging directory: %s", exc)
    clock.add(result.phases)
    run.report = result.report
    run.moved_aside = result.moved_aside
    for line in verification_lines(result.report):
        log.info("%s", line)


def restore_by_replay(run: RestoreRun, source: SourceRef, log: Any) -> None:
    """Load the backup into a throwaway server and write its keys into the live target, verified."""
    run.step = "load, replay, verify"
    done = replay_into_target(run.request, source, run.tag)
    run.clock.add(done.phases)
    run.report = done.report
    rate = done.result.payload_bytes / done.phases["replay"] / 1e6 if done.phases.get("replay") else 0.0
    log.info("replayed %d keys (%.0f MB/s of payload)", done.result.written, rate)
    for line in verification_lines(done.report):
        log.info("%s", line)


def wait_for_approval(plan: RestorePlan, request: RestoreRequest, log: Any) -> None:
    """Pause until a person approves the plan in the Prefect UI; refuse when not approved in time."""
    log.warning(
        "environment %s is protected: waiting up to %d s for a person to approve this plan in the "
        "Prefect UI (Resume, tick 'approve')",
        request.environment or "?",
        request.approval_timeout_seconds,
    )
    form = RestoreApproval.with_initial_data(description=plan.markdown(), approve=False)
    try:
        answer = pause_flow_run(
            wait_for_input=form,
            timeout=request.approval_timeout_seconds,
            poll_interval=APPROVAL_POLL_SECONDS,
            key=f"approve-{plan.tag.lower()}",  # run input keys: lowercase letters, digits, dashes
        )
    except FlowPauseTimeout:
        raise RefusedError(
            f"nobody approved the restore within {request.approval_timeout_seconds} s: nothing was touched"
        ) from None
    if not answer.approve:
        raise RefusedError("the restore was not approved (resumed without 'approve'): nothing was touched")
    log.info("approved: %s", answer.note or "(no note)")
