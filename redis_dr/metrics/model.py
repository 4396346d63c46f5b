"""What one run tells Prometheus: its figures per location, as the gauges a batch job exposes.

A run's metrics are grouped by (operation, environment, instance, location): one
Pushgateway group, one textfile. Each gauge is sent only when the run has it:

- every attempt: `redis_dr_last_attempt_timestamp_seconds`, `redis_dr_last_duration_seconds`,
  `redis_dr_last_run_success` (1 or 0);
- a success only: `redis_dr_last_success_timestamp_seconds` (and the size and keys it made);
- a failure only: `redis_dr_last_failure_timestamp_seconds`;
- a figure the run measured (replication lag, drill RTO...): when it is known.

A sink replaces only the gauges a run sends (Pushgateway POST; the textfile sink
merges with the file it replaces), so a failure never overwrites the last success.
A successful RDB backup in its primary location also sets the runbook's
`redis_last_backup_timestamp_seconds{environment, instance}` (a group of its own),
so that alerts written against it keep working. Timestamps are the time the run
ended (seconds since the epoch); every value is in base units.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum

from prometheus_client.core import GaugeMetricFamily, Metric
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

#: The Pushgateway job of every group (node_exporter's textfile collector adds its own job).
JOB = "redis-dr"
#: The labels of every redis-dr gauge, in this order; also a group's Pushgateway grouping key.
LABELS = ("operation", "environment", "instance", "location")
#: The runbook's gauge and its labels, kept so that existing alerts keep working.
COMPAT_BACKUP_METRIC = "redis_last_backup_timestamp_seconds"
COMPAT_LABELS = ("environment", "instance")


class Operation(StrEnum):
    """What a run did (the `operation` label)."""

    BACKUP = "backup"
    AOF_BACKUP = "aof_backup"
    RESTORE = "restore"
    PRUNE = "prune"
    REPLICATE = "replicate"
    VALIDATE = "validate"
    RESTORE_TEST = "restore_test"
    DRILL = "drill"


class RunMetrics(BaseModel):
    """One run's figures at one location (`location` empty: a run not about one location)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operation: Operation
    environment: str | None = None
    instance: str
    location: str = Field(default="", description="The storage location, secrets redacted.")
    succeeded: bool
    finished_at: datetime = Field(description="When the run ended (its attempt and success time).")
    duration_seconds: float = Field(ge=0)
    primary: bool = Field(default=False, description="A backup's primary location (the runbook's gauge).")
    size_bytes: int | None = Field(default=None, ge=0, description="Bytes the success made or read.")
    #: Not named `keys`: Prefect takes a model with a `keys` attribute for a mapping (its task
    #: parameters are walked); `keys=` is still accepted when the model is built.
    key_count: int | None = Field(
        default=None, ge=0, validation_alias=AliasChoices("key_count", "keys"),
        description="Keys the success made or read.",
    )  # fmt: skip
    max_age_seconds: float | None = Field(default=None, gt=0, description="Oldest its last success may get.")
    lag_seconds: float | None = Field(default=None, ge=0, description="Replication lag of this destination.")
    max_lag_seconds: float | None = Field(default=None, ge=0, description="The lag the run tolerates.")
    rto_seconds: float | None = Field(default=None, ge=0, description="Drill: from the kill to verified.")
    rpo_seconds: float | None = Field(default=None, ge=0, description="Drill: age of the restored backup.")
    rto_target_seconds: float | None = Field(default=None, gt=0, description="Drill: the RTO to meet.")
    lost_keys: int | None = Field(default=None, ge=0, description="Drill: keys written after the backup.")
    checked_backups: int | None = Field(default=None, ge=0, description="Validate: backups checked.")
    failed_backups: int | None = Field(default=None, ge=0, description="Validate: backups that failed.")
    removed_backups: int | None = Field(default=None, ge=0, description="Prune: backups removed.")

    def label_values(self) -> dict[str, str]:
        """The labels of its gauges (an unknown environment is empty, as Prometheus reads absent)."""
        return {
            "operation": self.operation.value,
            "environment": self.environment or "",
            "instance": self.instance,
            "location": self.location,
        }


class RunTimer:
    """The start of a run, to give each of its RunMetrics the run's duration and end."""

    def __init__(self) -> None:
        self._started = time.monotonic()

    def metrics(self, operation: Operation, environment: str | None, instance: str, location: str = "",
                *, succeeded: bool, **figures: object) -> RunMetrics:  # fmt: skip
        """The run's metrics at one location, ending now."""
        return RunMetrics.model_validate({
            "operation": operation, "environment": environment, "instance": instance,
            "location": location, "succeeded": succeeded, "finished_at": datetime.now(UTC),
            "duration_seconds": time.monotonic() - self._started, **figures,
        })  # fmt: skip


class Sent(Enum):
    """When a run sends a gauge."""

    ALWAYS = "every attempt"
    SUCCESS = "a success"
    FAILURE = "a failure"
    KNOWN = "when known"


@dataclass(frozen=True)
class Gauge:
    """One gauge of a group: its name, help, when it is sent, and its value."""

    name: str
    help: str
    sent: Sent
    value: Callable[[RunMetrics], float | None]

    def sent_by(self, run: RunMetrics) -> bool:
        """This run sends the gauge (a figure only when it has one)."""
        if self.sent is Sent.SUCCESS and not run.succeeded:
            return False
        if self.sent is Sent.FAILURE and run.succeeded:
            return False
        return self.value(run) is not None


def _timestamp(run: RunMetrics) -> float:
    return run.finished_at.timestamp()


GAUGES: tuple[Gauge, ...] = (
    Gauge("redis_dr_last_attempt_timestamp_seconds", "When the last run ended, successful or not.",
          Sent.ALWAYS, _timestamp),
    Gauge("redis_dr_last_duration_seconds", "How long the last run took.", Sent.ALWAYS,
          lambda run: run.duration_seconds),
    Gauge("redis_dr_last_run_success", "1 if the last run succeeded, 0 if it failed.", Sent.ALWAYS,
          lambda run: 1.0 if run.succeeded else 0.0),
    Gauge("redis_dr_last_success_timestamp_seconds", "When the last successful run ended.", Sent.SUCCESS,
          _timestamp),
    Gauge("redis_dr_last_failure_timestamp_seconds", "When the last failed run ended.", Sent.FAILURE,
          _timestamp),
    Gauge("redis_dr_last_success_size_bytes", "Bytes the last successful run stored or read.", Sent.SUCCESS,
          lambda run: run.size_bytes),
    Gauge("redis_dr_last_success_keys", "Keys the last successful run backed up or restored.", Sent.SUCCESS,
          lambda run: run.key_count),
    Gauge("redis_dr_max_age_seconds", "How old the last success may get before it is overdue "
          "(from the schedule).", Sent.KNOWN, lambda run: run.max_age_seconds),
    Gauge("redis_dr_replication_lag_seconds", "How far this location's newest backup is behind the "
          "source's, after the last replication.", Sent.KNOWN, lambda run: run.lag_seconds),
    Gauge("redis_dr_replication_max_lag_seconds", "The replication lag the last run tolerated.", Sent.KNOWN,
          lambda run: run.max_lag_seconds),
    Gauge("redis_dr_drill_rto_seconds", "Recovery time of the last drill: from the kill to a verified, "
          "writable server.", Sent.KNOWN, lambda run: run.rto_seconds),
    Gauge("redis_dr_drill_rpo_seconds", "Recovery point of the last drill: the age of the restored backup "
          "at the kill.", Sent.KNOWN, lambda run: run.rpo_seconds),
    Gauge("redis_dr_drill_rto_target_seconds", "The recovery time the last drill had to meet.", Sent.KNOWN,
          lambda run: run.rto_target_seconds),
    Gauge("redis_dr_drill_lost_keys", "Keys written after the restored backup, lost in the last drill.",
          Sent.KNOWN, lambda run: run.lost_keys),
    Gauge("redis_dr_validation_checked_backups", "Backups the last validation checked here.", Sent.KNOWN,
          lambda run: run.checked_backups),
    Gauge("redis_dr_validation_failed_backups", "Backups that failed the last validation here.", Sent.KNOWN,
          lambda run: run.failed_backups),
    Gauge("redis_dr_prune_removed_backups", "Backups the last prune removed here.", Sent.KNOWN,
          lambda run: run.removed_backups),
)  # fmt: skip
COMPAT_HELP = "When the last successful backup of the instance ended (the runbook's gauge)."


@dataclass(frozen=True)
class MetricGroup:
    """The gauges one run sends for one set of labels: a Pushgateway group, a textfile."""

    labels: dict[str, str]
    families: list[Metric]

    @property
    def names(self) -> set[str]:
        """The gauges it sends (what a sink replaces)."""
        return {family.name for family in self.families}

    @property
    def file_stem(self) -> str:
        """A file name of its own, from its labels: 'redis-dr_backup_production_sessions_s3-dr-1a2b3c4d'."""
        values = [self.labels.get(name, "") for name in ("operation", "environment", "instance")]
        if "operation" not in self.labels:
            values[0] = "last-backup"
        stem = "_".join(_slug(value) or "-" for value in values)
        location = self.labels.get("location")
        if location:
            digest = hashlib.sha256(location.encode()).hexdigest()[:8]
            stem += f"_{_slug(location)[:40]}-{digest}"
        return f"redis-dr_{stem}"


def _slug(text: str) -> str:
    """Letters, digits, '.' and '-' only: safe in a file name."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", re.sub(r"^[a-z0-9]+://", "", text)).strip("-.")


def groups_of(runs: Iterable[RunMetrics]) -> list[MetricGroup]:
    """The groups the runs send: one per run, plus the runbook's gauge of a successful primary backup."""
    groups: list[MetricGroup] = []
    for run in runs:
        labels = run.label_values()
        families: list[Metric] = []
        for gauge in GAUGES:
            if gauge.sent_by(run):
                family = GaugeMetricFamily(gauge.name, gauge.help, labels=list(LABELS))
                family.add_metric([labels[name] for name in LABELS], float(gauge.value(run) or 0.0))
                families.append(family)
        groups.append(MetricGroup(labels=labels, families=families))
        if run.operation is Operation.BACKUP and run.primary and run.succeeded:
            groups.append(compat_group(run))
    return groups


def compat_group(run: RunMetrics) -> MetricGroup:
    """`redis_last_backup_timestamp_seconds{environment, instance}` of a successful backup."""
    labels = {name: run.label_values()[name] for name in COMPAT_LABELS}
    family = GaugeMetricFamily(COMPAT_BACKUP_METRIC, COMPAT_HELP, labels=list(COMPAT_LABELS))
    family.add_metric(list(labels.values()), _timestamp(run))
    return MetricGroup(labels=labels, families=[family])


class Families:
    """A collector of fixed families, so that prometheus_client renders them."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> list[Metric]:
        """The families, as given."""
        return self._families


def exposition(families: Iterable[Metric]) -> bytes:
    """The families in the Prometheus text format (0.0.4), as Pushgateway and node_exporter read it."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(families))
    return generate_latest(registry)
