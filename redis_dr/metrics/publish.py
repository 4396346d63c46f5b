"""Publish a run's metrics to its sinks: the Pushgateway, the textfile directory, or both."""

from __future__ import annotations

from collections.abc import Sequence

from redis_dr.metrics.model import RunMetrics, groups_of
from redis_dr.metrics.pushgateway import PUSH_TIMEOUT, push_groups
from redis_dr.metrics.targets import MetricsTargets
from redis_dr.metrics.textfile import write_groups


def publish(targets: MetricsTargets, runs: Sequence[RunMetrics]) -> list[str]:
    """Send the runs' groups to every sink of `targets`; one line per sink saying what was done.

    Stops at the first error (a RedisDRError naming the sink); give one sink at a
    time (`targets.sinks()`) so that one failing sink does not keep the other unfed.
    """
    groups = groups_of(with_max_age(runs, targets))
    lines = []
    if targets.pushgateway is not None:
        pushed = push_groups(targets.pushgateway, groups)
        lines.append(f"metrics pushed to {targets.pushgateway} ({pushed} group(s))")
    if targets.textfile_dir is not None:
        written = write_groups(targets.textfile_dir, groups)
        lines.append(f"metrics written to {targets.textfile_dir} ({len(written)} file(s))")
    return lines


def with_max_age(runs: Sequence[RunMetrics], targets: MetricsTargets) -> list[RunMetrics]:
    """The runs, each with the targets' max age unless it has its own."""
    if targets.max_age is None:
        return list(runs)
    seconds = targets.max_age.total_seconds()
    return [
        run if run.max_age_seconds is not None else run.model_copy(update={"max_age_seconds": seconds})
        for run in runs
    ]


def publish_seconds(targets: MetricsTargets, runs: Sequence[RunMetrics]) -> float:
    """The longest publishing can block on its own sockets (each push bounded by PUSH_TIMEOUT)."""
    groups = len(groups_of(runs))
    return groups * PUSH_TIMEOUT if targets.pushgateway is not None else 0.0
