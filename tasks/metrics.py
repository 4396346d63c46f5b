"""Publishing a run's metrics at its end: a task per sink, and the helper every flow calls.

Metrics never decide a run's outcome: a sink that fails (after the task's retries
of a transient error) is one WARNING line naming it and why, and the run ends as
it would have. No postponed annotations here (see tasks/backup.py).
"""

from collections.abc import Callable, Sequence

from prefect import task

from redis_dr.errors import RedisDRError
from redis_dr.metrics.model import RunMetrics
from redis_dr.metrics.publish import publish, publish_seconds
from redis_dr.metrics.targets import MetricsTargets
from tasks.policy import MARGIN_SECONDS, RETRY_POLICY
from tasks.run_logs import RunLog


# Each push is bounded by its socket timeout (PUSH_TIMEOUT); a textfile write by the local disk.
@task(name="publish-metrics", timeout_seconds=MARGIN_SECONDS, **RETRY_POLICY)
def publish_metrics(targets: MetricsTargets, runs: list[RunMetrics]) -> list[str]:
    """Send the runs' metrics to the sink(s) of `targets` (pushadd / atomic files); what was done."""
    return publish(targets, runs)


def resolve_targets(metrics: MetricsTargets | None) -> MetricsTargets:
    """The flow's `metrics` parameter, its empty fields filled from the worker's environment."""
    return (metrics or MetricsTargets()).with_defaults()


def report_metrics(
    metrics: MetricsTargets | None,
    measure: Sequence[RunMetrics] | Callable[[], Sequence[RunMetrics]],
    log: RunLog,
) -> None:
    """Publish the run's metrics (or what `measure()` returns) to each configured sink; any
    failure, in measuring too (pass a callable to have that guarded), is a WARNING, never the run's.

    Nothing configured (no parameter, no REDIS_DR_PUSHGATEWAY / REDIS_DR_TEXTFILE_DIR):
    nothing is measured nor published, silently.
    """
    try:
        targets = resolve_targets(metrics)
    except RedisDRError as exc:  # e.g. a malformed REDIS_DR_PUSHGATEWAY of the worker
        log.warning("metrics not published: %s", exc)
        return
    if targets.empty:
        return
    try:
        runs = list(measure() if callable(measure) else measure)
    except Exception as exc:  # a bug in measuring: the run's outcome stands
        log.warning("metrics not published: measuring the run failed: %s", _first_line(exc))
        return
    if not runs:
        return
    for sink in targets.sinks():
        timeout = publish_seconds(sink, runs) + MARGIN_SECONDS
        try:
            for line in publish_metrics.with_options(timeout_seconds=timeout)(sink, runs):
                log.info("%s", line)
        except RedisDRError as exc:
            log.warning("%s", exc)
        except Exception as exc:  # a task timeout, or a bug: still not the run's outcome
            log.warning("metrics not published to %s: %s", sink.describe(), _first_line(exc))


def _first_line(exc: BaseException) -> str:
    """'ValueError: the first line of its message' (a pydantic error spans several)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
