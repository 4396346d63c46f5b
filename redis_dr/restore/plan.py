"""The restore plan: what preflight found and what the restore will do, shown before it acts.

The same plan is printed in the terminal, shown in the approval form, and kept in
the run's artifact, so that what a person approved is what ran.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from redis_dr.redis.info import KeyspaceStats
from redis_dr.units import human_size


def new_tag() -> str:
    """A restore's tag: its UTC start to the millisecond (`20261125T125522-123Z`), so that a
    restore run right after another one does not find that one's aside directory in its way."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}-{now.microsecond // 1000:03d}Z"


class Verdict(StrEnum):
    """What a preflight check says about going on."""

    OK = "ok"
    WARN = "warn"  # go on, but a person should know
    REFUSE = "refuse"  # the restore does not start


class Check(BaseModel):
    """One preflight finding."""

    name: str
    verdict: Verdict
    detail: str


class BackupSummary(BaseModel):
    """The backup as the plan shows it."""

    id: str
    where: str
    kind: str
    created_at: datetime
    age_seconds: float
    raw_size: int
    stored_size: int
    rdb_version: int | None
    redis_version: str
    keyspace: dict[int, KeyspaceStats] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    encrypted: bool = False

    @property
    def total_keys(self) -> int:
        """Keys over all databases."""
        return sum(stats.key_count for stats in self.keyspace.values())


class TargetSummary(BaseModel):
    """The target as the plan shows it."""

    name: str
    description: str
    state: str
    reachable: bool
    redis_version: str | None = None
    role: str | None = None
    max_rdb_version: int | None = None
    data_dir: str | None = None
    appendonly: bool | None = None
    free_bytes: int | None = None
    owner: str | None = None
    keyspace: dict[int, KeyspaceStats] = Field(default_factory=dict)


class RestorePlan(BaseModel):
    """Preflight's result: the backup, the target, the checks, and the steps in order."""

    tag: str
    instance: str
    strategy: str
    backup: BackupSummary
    target: TargetSummary
    checks: list[Check]
    steps: list[str]
    checkpoint: bool = False

    @property
    def refusals(self) -> list[Check]:
        """Checks that stop the restore."""
        return [check for check in self.checks if check.verdict is Verdict.REFUSE]

    def lines(self) -> list[str]:
        """The plan as lines of plain text (terminal)."""
        backup, target = self.backup, self.target
        keys = ", ".join(
            f"db{db} {stats.key_count} keys ({stats.expires} expiring)"
            for db, stats in sorted(backup.keyspace.items())
        )
        lines = [
            f"restore plan {self.tag} ({self.strategy} strategy)",
            f"  backup:  {backup.id} of {self.instance}, {backup.kind}, "
            f"taken {_age(backup.age_seconds)} ago, "
            f"{human_size(backup.raw_size)} ({human_size(backup.stored_size)} stored), "
            f"RDB v{backup.rdb_version or '?'}, from {backup.where}",
            f"           {keys or 'no keys'}",
            f"  target:  {target.description} ({target.state}"
            + (f", Redis {target.redis_version}, {target.role}" if target.redis_version else "")
            + ")",
        ]
        return lines + check_and_step_lines(self.checks, self.steps)

    def markdown(self) -> str:
        """The plan as Markdown (artifact and approval form)."""
        rows = "\n".join(
            f"| {check.verdict.value} | {check.name} | {check.detail} |" for check in self.checks
        )
        steps = "\n".join(f"{number}. {step}" for number, step in enumerate(self.steps, start=1))
        head = "\n".join(f"    {line}" for line in self.lines()[:4])
        return f"{head}\n\n| verdict | check | detail |\n|---|---|---|\n{rows}\n\n**Steps**\n\n{steps}\n"


def _age(seconds: float) -> str:
    """A short age: 45 s, 12 min, 5.2 h, 3.0 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def check_and_step_lines(checks: list[Check], steps: list[str]) -> list[str]:
    """A plan's checks (ok / WARN / REFUSE) and numbered steps, as the terminal shows them."""
    lines = []
    for check in checks:
        mark = {"ok": "ok    ", "warn": "WARN  ", "refuse": "REFUSE"}[check.verdict.value]
        lines.append(f"  {mark}  {check.name}: {check.detail}")
    lines.append("  steps:")
    lines += [f"    {number}. {step}" for number, step in enumerate(steps, start=1)]
    return lines
