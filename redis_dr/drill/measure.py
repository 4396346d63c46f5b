"""What a drill measures: the phases from the kill to a verified server (RTO), the recovery point
(RPO: the restored backup's age at the kill, and the keys lost), and the verdict against the target.

Pure functions over numbers the flow collected; no server is contacted here.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from redis_dr.errors import PermanentError
from redis_dr.manifest import as_utc
from redis_dr.redis.info import KeyspaceStats

#: Phases in the order a drill runs them (the table lists them so): the kill, the restart of the
#: killed target (replay), finding the backup, preflight, fetch (download, check and stage the
#: files), stop (a no-op: the target is dead), place, load, replay, verify.
DRILL_PHASES = (
    "kill", "restart", "find", "preflight", "fetch", "stop", "place", "load", "replay", "verify",
)  # fmt: skip


class RecoveryPoint(BaseModel):
    """What the drill lost: the restored backup's age at the kill, and the keys per database."""

    backup_age_seconds: float = Field(description="Seconds from the backup's snapshot to the kill.")
    keys_before: dict[int, int] = Field(description="Keys per database just before the kill.")
    keys_after: dict[int, int] = Field(description="Keys per database after the restore.")
    keys_lost: dict[int, int] = Field(description="Net keys lost per database (before - after).")
    marker_gone: bool = Field(description="The key written just before the kill is gone after the restore.")

    @property
    def total_lost(self) -> int:
        """Net keys lost over every database (negative: more keys after than before)."""
        return sum(self.keys_lost.values())


def key_counts(keyspace: dict[int, KeyspaceStats]) -> dict[int, int]:
    """Keys per database from INFO keyspace."""
    return {db: stats.key_count for db, stats in sorted(keyspace.items())}


def recovery_point(
    *,
    backup_created_at: datetime,
    killed_at: datetime,
    before: dict[int, int],
    after: dict[int, int],
    marker_gone: bool,
) -> RecoveryPoint:
    """The recovery point: the backup's age at the kill, and keys before vs after, per database (net)."""
    age = (as_utc(killed_at) - as_utc(backup_created_at)).total_seconds()
    dbs = sorted(set(before) | set(after))
    return RecoveryPoint(
        backup_age_seconds=max(0.0, age),
        keys_before=dict(before),
        keys_after=dict(after),
        keys_lost={db: before.get(db, 0) - after.get(db, 0) for db in dbs},
        marker_gone=marker_gone,
    )


def failures(*, rto_seconds: float, rto_target_seconds: float, point: RecoveryPoint) -> list[str]:
    """Why a drill whose restore verified still fails: over the RTO target, or the marker survived."""
    problems = []
    if not point.marker_gone:
        problems.append(
            "the marker key written just before the kill is still there: the target does not hold the "
            "backup's data (did the restore replace it?)"
        )
    if rto_seconds > rto_target_seconds:
        problems.append(
            f"RTO {rto_seconds:.1f} s is over the target of {format_seconds(rto_target_seconds)}"
        )
    return problems


def phase_rows(phases: dict[str, float]) -> list[tuple[str, float]]:
    """The phases in run order (unknown ones after), as (name, seconds)."""
    ordered = [name for name in DRILL_PHASES if name in phases] + [n for n in phases if n not in DRILL_PHASES]
    return [(name, phases[name]) for name in ordered]


def format_seconds(seconds: float) -> str:
    """'4.2 s', '12 min 5 s', '3.1 h'."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s"
    return f"{seconds / 3600:.1f} h"


class DrillFailedError(PermanentError):
    """The drill ran and the target recovered, but the drill failed; carries the outcome."""

    def __init__(self, message: str, outcome: object = None) -> None:
        super().__init__(message)
        self.outcome = outcome

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.outcome))


class DrillOverTargetError(DrillFailedError):
    """Recovered and verified, but slower than the RTO target."""

    exit_code = 7


class DrillDataError(DrillFailedError):
    """Recovered, but the data is not the backup's (the marker survived) or verification failed."""

    exit_code = 5
