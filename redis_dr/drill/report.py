"""What a drill tells people: the verdict first, then the phases, the recovery point, the
verification, and the last drills as a table with the trend (Markdown for the artifact)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from redis_dr.drill.history import DrillRecord, Trend
from redis_dr.drill.measure import RecoveryPoint, format_seconds, phase_rows
from redis_dr.drill.plan import DrillPlan
from redis_dr.restore.verify import VerifyReport

#: An empty table cell (a lone '-' renders as a list bullet).
_NONE = "—"


class DrillOutcome(BaseModel):
    """What the drill flow returns (and `redis-dr drill --json` prints)."""

    tag: str
    instance: str
    environment: str | None = None
    target: str
    strategy: str
    backup_id: str | None = None
    killed_at: datetime | None = None
    phases: dict[str, float] = Field(default_factory=dict)
    rto_seconds: float | None = None
    rto_target_seconds: float
    recovery_point: RecoveryPoint | None = None
    verification: VerifyReport | None = None
    passed: bool = False
    failures: list[str] = Field(default_factory=list)
    trend: Trend | None = None
    record_key: str | None = None
    #: The last drills, newest first: this one (once recorded, at `record_key`) and those read back.
    history: list[DrillRecord] = Field(default_factory=list)
    #: History records that could not be read, named.
    unreadable: list[str] = Field(default_factory=list)
    aside: str | None = None

    @property
    def regression(self) -> bool:
        """Much slower than the median of the previous drills."""
        return self.trend is not None and self.trend.regression

    def verdict(self) -> str:
        """One line: PASSED / FAILED, the RTO against the target, the RPO, the keys lost."""
        word = "PASSED" if self.passed else "FAILED"
        parts = [f"drill of {self.instance} {word}"]
        if self.rto_seconds is not None:
            parts.append(
                f"RTO {format_seconds(self.rto_seconds)} (target {format_seconds(self.rto_target_seconds)})"
            )
        point = self.recovery_point
        if point is not None:
            parts.append(f"RPO {format_seconds(point.backup_age_seconds)}, {point.total_lost} key(s) lost")
        line = ", ".join(parts)
        if self.failures:
            line += ": " + "; ".join(self.failures)
        if self.regression:
            line += " (flagged: RTO regression)"
        return line


def markdown(outcome: DrillOutcome, plan: DrillPlan | None, *, error: str | None = None) -> str:
    """The artifact: verdict, regression flag, phases, recovery point, verification, plan, history."""
    if error:
        parts = [f"**Drill of {outcome.instance} FAILED**: {error}"]
    else:
        parts = [f"**{_capital(outcome.verdict())}**"]
    if outcome.regression and outcome.trend is not None:
        parts.append(f"⚠ **Flagged: RTO regression.** {outcome.trend.line(outcome.rto_seconds)}")
    if outcome.phases:
        rows = "\n".join(f"| {name} | {seconds:.2f} |" for name, seconds in phase_rows(outcome.phases))
        rto = outcome.rto_seconds
        total = f"| **RTO (kill to verified)** | **{rto:.2f}** |" if rto is not None else ""
        parts.append(f"## Phases\n\n| phase | seconds |\n|---|---:|\n{rows}\n{total}".rstrip())
    point = outcome.recovery_point
    if point is not None:
        dbs = sorted(set(point.keys_before) | set(point.keys_after))
        before, after = point.keys_before, point.keys_after
        rows = "\n".join(
            f"| db{db} | {before.get(db, 0)} | {after.get(db, 0)} | {point.keys_lost[db]} |" for db in dbs
        )
        marker = "gone (the data is the backup's)" if point.marker_gone else "STILL THERE (not the backup's)"
        parts.append(
            f"## Recovery point\n\nBackup `{outcome.backup_id}` was "
            f"{format_seconds(point.backup_age_seconds)} old at the kill; the marker key written just "
            f"before the kill is {marker}.\n\n"
            "| database | keys before the kill | keys after the restore | lost (net) |\n"
            "|---|---:|---:|---:|\n"
            f"{rows or '| ' + _NONE + ' | 0 | 0 | 0 |'}"
        )
    if outcome.verification is not None and outcome.verification.findings:
        rows = "\n".join(
            f"| {item.result.value} | {item.name} | {item.detail} |" for item in outcome.verification.findings
        )
        parts.append(f"## Verification\n\n| result | check | detail |\n|---|---|---|\n{rows}")
    parts.append(history_markdown(outcome))
    if plan is not None:
        parts.append("## Plan (shown before the kill)\n\n" + plan.markdown())
    return "\n\n".join(parts)


def history_markdown(outcome: DrillOutcome) -> str:
    """The last drills, newest first (this one on top when it was recorded), and the trend."""
    lines = ["## Last drills", ""]
    if outcome.trend is not None:
        lines += [f"Trend: {outcome.trend.line(outcome.rto_seconds)}.", ""]
    lines += [
        "| date (UTC) | backup | RTO | RPO | keys lost | result | flagged |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    current = outcome.record_key or ""
    lines += [history_row(r, current=current.endswith(f"/{r.id}.json")) for r in outcome.history]
    if not outcome.history:
        lines.append(f"| {_NONE} | {_NONE} | {_NONE} | {_NONE} | {_NONE} | no drill recorded | {_NONE} |")
    if outcome.unreadable:
        lines += ["", "Records that could not be read:", ""]
        lines += [f"- {line}" for line in outcome.unreadable]
    return "\n".join(lines)


def history_row(record: DrillRecord, *, current: bool = False) -> str:
    """One row of the history table."""
    when = f"{record.killed_at:%Y-%m-%d %H:%M}" + (" (this drill)" if current else "")
    rto = format_seconds(record.rto_seconds) if record.rto_seconds is not None else _NONE
    rpo = format_seconds(record.rpo_seconds) if record.rpo_seconds is not None else _NONE
    lost = str(record.keys_lost) if record.keys_lost is not None else _NONE
    result = "pass" if record.passed else "FAIL"
    flagged = "REGRESSION" if record.regression else _NONE
    return f"| {when} | {record.backup_id} | {rto} | {rpo} | {lost} | {result} | {flagged} |"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
