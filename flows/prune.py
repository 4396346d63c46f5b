"""The prune flow: each storage location of one instance pruned with its own retention policy.

Per location, one `plan-prune` task (reads only) and, when the request applies,
one `apply-prune` task that removes what that plan listed and nothing else. A
location that fails (unreachable, an unreadable manifest) does not stop the
others: the run fails at the end naming it. The artifact lists, per location,
every backup kept or removed and why. No postponed annotations here (see
flows/backup.py).
"""

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.states import Failed

from flows.lease import instance_lease
from flows.prune_report import publish_artifact, summary_line
from flows.run_names import run_name_for
from redis_dr.errors import RedisDRError
from redis_dr.metrics.model import Operation, RunMetrics, RunTimer
from redis_dr.metrics.targets import MetricsTargets
from redis_dr.prune import LocationOutcome, PruneOutcome, PruneRequest
from redis_dr.storage.location import redact_url
from tasks.metrics import report_metrics
from tasks.prune import apply_task, plan_task
from tasks.run_logs import RunLog, one_line_errors


@flow(name="redis-prune", flow_run_name=run_name_for("prune"), validate_parameters=True)
def prune(request: PruneRequest, metrics: MetricsTargets | None = None) -> PruneOutcome:
    """Prune every location of the instance with its own policy (a dry run unless `apply`).

    `metrics`: where an applied run's metrics go (empty: REDIS_DR_PUSHGATEWAY /
    REDIS_DR_TEXTFILE_DIR, if set); a dry run publishes none (it pruned nothing).
    """
    one_line_errors()
    log = get_run_logger()
    timer = RunTimer()
    outcome = PruneOutcome(
        instance=request.instance,
        applied=request.apply,
        locations=[
            LocationOutcome(url=redact_url(location.url), policy=location.policy.describe())
            for location in request.locations
        ],
    )
    now = datetime.now(UTC)
    errors: list[RedisDRError] = []
    try:
        with instance_lease(request.environment, request.instance):
            for position, location in enumerate(outcome.locations, start=1):
                try:
                    prune_location(request, position, location, now, log)
                except RedisDRError as exc:
                    location.error = str(exc)
                    errors.append(exc)
                    log.error("location %d %s: %s", position, location.url, exc)
    except RedisDRError as exc:  # the instance's lease was not had: nothing was touched
        log.error("prune of %s did not start: %s", request.instance, exc)
        report_metrics(metrics, lambda: prune_metrics(request, outcome, timer, failed=True), log)
        return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
    except Exception as exc:  # a bug: the artifact says so, Prefect keeps the traceback
        publish_artifact(outcome, error=f"unexpected {type(exc).__name__}: {exc}")
        report_metrics(metrics, lambda: prune_metrics(request, outcome, timer, failed=True), log)
        raise
    publish_artifact(outcome)
    report_metrics(metrics, lambda: prune_metrics(request, outcome, timer), log)
    if errors:
        failed = [location for location in outcome.locations if location.error is not None]
        details = "; ".join(f"{location.url}: {location.error}" for location in failed)
        failure = type(errors[0])(
            f"prune of {request.instance} failed at {len(failed)} of {len(outcome.locations)} "
            f"location(s) (the others were pruned): {details}"
            if len(outcome.locations) > 1
            else f"prune of {request.instance} failed: {errors[0]}"
        )
        # A returned state is the run's final state; calling the flow raises `failure` (see flows/backup.py).
        return Failed(message=str(failure), data=failure)  # type: ignore[return-value]
    return outcome


def prune_metrics(
    request: PruneRequest, outcome: PruneOutcome, timer: RunTimer, failed: bool = False
) -> list[RunMetrics]:
    """Per location of an applied run: pruned or not, and how many backups it removed."""
    if not request.apply:
        return []
    metrics = []
    for location in outcome.locations:
        done = not failed and location.error is None and location.result is not None
        removed = len(location.result.removed) if done and location.result else None
        metrics.append(timer.metrics(
            Operation.PRUNE, request.environment, request.instance, location.url, succeeded=done,
            removed_backups=removed,
        ))  # fmt: skip
    return metrics


def prune_location(
    request: PruneRequest, position: int, location: LocationOutcome, now: datetime, log: RunLog
) -> None:
    """Plan one location; apply the plan when the request says so. Records both in `location`."""
    target = request.locations[position - 1]
    log.info("location %d %s: policy %s", position, location.url, location.policy)
    plan = plan_task(position)(target.url, request.instance, target.policy, now, request.orphan_grace)
    location.plan = plan
    for decision in plan.removals:
        log.info("%s %s: %s", "removing" if request.apply else "would remove", decision.backup_id,
                 ", ".join(decision.reasons))  # fmt: skip
    for orphan in plan.in_progress:
        log.info("in progress, left alone: %s (last written %s)", orphan.backup_id, orphan.last_written)
    if request.apply:
        location.result = apply_task(position)(target.url, plan)
        for line in location.result.skipped:
            log.warning("left: %s", line)
    summary = summary_line(plan, location.result, hint="apply is off")
    log.info("location %d %s: %s", position, location.url, summary)
