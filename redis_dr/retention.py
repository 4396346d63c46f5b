"""Which backups to keep: a retention policy with restic `forget` semantics.

`RetentionPolicy` is the policy of one storage location (each location has its
own: a cheaper second region may keep monthlies for a year and nothing else).
`decide` applies it to the complete backups of one instance there, newest first:

- keep-last N: the N newest backups.
- hourly/daily/weekly/monthly/yearly N: the newest backup of each of the last N
  calendar periods that have a backup (periods without one are skipped; of
  several in one period, the newest). As in restic since 0.16, when a rule still
  has periods left after the oldest backup, the oldest backup is kept by it too
  ("oldest daily 3/7"): the history reaches as far back as it can.
  Weeks are ISO weeks (Monday to Sunday); periods are counted in UTC unless
  the policy names a time zone (by the wall clock, as restic does: the hour a
  DST change repeats is one hour).
- keep-within D: every backup taken less than D before the NEWEST backup (not
  before now: if backups stall, the last D of them stay).
- One backup may be kept by several rules; its reasons name each.

Those rules apply to regular backups. A restore's checkpoints (label
`pre-restore`) are not counted by them (`latest` passes over them too): they are
kept while younger than `keep_pre_restore` (measured from now), then removed.
Never removed whatever the rules say: the newest backup (and the newest regular
one, which `latest` restores), pinned backups (label `pinned`), then the newest
backups until `min_keep` are kept. A policy without rules keeps everything.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from redis_dr.config import ZoneName
from redis_dr.durations import Duration, format_duration
from redis_dr.manifest import Manifest, as_utc
from redis_dr.restore.source import PRE_RESTORE_LABEL

#: A backup with this label is never removed by a prune (its value does not matter).
PINNED_LABEL = "pinned"

__all__ = ["PINNED_LABEL", "PRE_RESTORE_LABEL", "Decision", "RetentionPolicy", "decide"]

#: (field, name in descriptions and reasons), in the order restic applies them.
PERIOD_RULES: tuple[tuple[str, str], ...] = (
    ("keep_hourly", "hourly"),
    ("keep_daily", "daily"),
    ("keep_weekly", "weekly"),
    ("keep_monthly", "monthly"),
    ("keep_yearly", "yearly"),
)

#: The calendar period a local time falls in, per rule name.
_PERIOD_OF: dict[str, Callable[[datetime], Hashable]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: t.date(),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}


def _periods(what: str) -> str:
    return (
        f"Keep the newest backup of each of the last N {what} that have a backup "
        "(periods without a backup are skipped). Empty: no such rule."
    )


class RetentionPolicy(BaseModel):
    """What a prune keeps at one storage location. A backup kept by any rule is kept."""

    model_config = ConfigDict(extra="forbid")

    keep_last: int | None = Field(default=None, ge=1, description="Keep the N newest backups.")
    keep_hourly: int | None = Field(default=None, ge=1, description=_periods("hours"))
    keep_daily: int | None = Field(default=None, ge=1, description=_periods("days"))
    keep_weekly: int | None = Field(default=None, ge=1, description=_periods("ISO weeks (Monday to Sunday)"))
    keep_monthly: int | None = Field(default=None, ge=1, description=_periods("calendar months"))
    keep_yearly: int | None = Field(default=None, ge=1, description=_periods("calendar years"))
    keep_within: Duration | None = Field(
        default=None,
        description="Keep every backup taken within this duration before the NEWEST backup "
        "(not before now: stalled backups never make everything expire), e.g. 30d, 12h, 1d12h.",
    )
    min_keep: int = Field(
        default=1,
        ge=1,
        description="Keep at least this many of the newest complete backups, whatever the rules say.",
    )
    timezone: ZoneName | None = Field(
        default=None,
        description="IANA time zone in which hours, days, weeks, months and years are counted "
        "(e.g. Europe/Berlin). Empty: UTC.",
    )
    keep_pre_restore: Duration = Field(
        default=timedelta(days=7),
        description="Keep the checkpoints a restore takes of its target first ('pre-restore' label) "
        "this long, measured from now, e.g. 7d.",
    )

    @field_validator("keep_within")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError(
                "keep-within 0s keeps nothing but the newest backup: give a positive duration such as 30d"
            )
        return value

    def has_rules(self) -> bool:
        """True when any keep rule is set (an empty policy keeps everything)."""
        return self.keep_last is not None or self.keep_within is not None or any(
            getattr(self, field) is not None for field, _ in PERIOD_RULES
        )

    def describe(self) -> str:
        """'last 3, hourly 24, daily 7, within 30d; min 1' (zone and pre-restore only when set)."""
        rules: list[str] = []
        if self.keep_last is not None:
            rules.append(f"last {self.keep_last}")
        rules += [f"{name} {getattr(self, field)}" for field, name in PERIOD_RULES if getattr(self, field)]
        if self.keep_within is not None:
            rules.append(f"within {format_duration(self.keep_within)}")
        text = (", ".join(rules) or "no retention rule") + f"; min {self.min_keep}"
        if self.timezone:
            text += f"; periods in {self.timezone}"
        return text


class Decision(BaseModel):
    """Whether one backup is kept, and why (or why not)."""

    backup_id: str = Field(description="The backup's id (YYYYMMDDTHHMMSSZ).")
    created_at: datetime = Field(description="When the backup was taken (UTC).")
    keep: bool = Field(description="True: kept; False: removed by a prune.")
    reasons: list[str] = Field(description="Every rule that keeps it, or why nothing does.")


def decide(manifests: Sequence[Manifest], policy: RetentionPolicy, now: datetime) -> list[Decision]:
    """Apply `policy` to the complete backups of one instance at `now`; newest first.

    Pure: the only clock is `now`. See the module docstring for the rules.
    """
    ordered = sorted(manifests, key=lambda m: (as_utc(m.created_at), m.id), reverse=True)
    if not policy.has_rules() or not ordered:
        return [_decision(m, ["no retention rule"]) for m in ordered]
    regular = [m for m in ordered if PRE_RESTORE_LABEL not in m.labels]
    checkpoints = [m for m in ordered if PRE_RESTORE_LABEL in m.labels]
    reasons: dict[str, list[str]] = {m.id: [] for m in ordered}
    _apply_rules(regular, policy, reasons)
    _apply_protections(ordered, regular, policy, now, reasons)
    kept = sum(1 for m in ordered if reasons[m.id])
    for manifest in regular + checkpoints:  # the floor fills with regular backups first
        if kept >= policy.min_keep:
            break
        if not reasons[manifest.id]:
            reasons[manifest.id].append(f"min keep {policy.min_keep}")
            kept += 1
    pre_restore_age = format_duration(policy.keep_pre_restore)
    return [
        _decision(m, reasons[m.id])
        if reasons[m.id]
        else _decision(
            m,
            [f"pre-restore checkpoint older than {pre_restore_age}"]
            if PRE_RESTORE_LABEL in m.labels
            else ["no rule keeps it"],
            keep=False,
        )
        for m in ordered
    ]


def _apply_rules(regular: list[Manifest], policy: RetentionPolicy, reasons: dict[str, list[str]]) -> None:
    """keep-last, the calendar periods and keep-within, over regular backups newest first."""
    if not regular:
        return
    if policy.keep_last is not None:
        for position, manifest in enumerate(regular[: policy.keep_last], start=1):
            reasons[manifest.id].append(f"last {position}/{policy.keep_last}")
    zone: tzinfo = ZoneInfo(policy.timezone) if policy.timezone else UTC
    for field, name in PERIOD_RULES:
        wanted: int | None = getattr(policy, field)
        if wanted is None:
            continue
        period_of = _PERIOD_OF[name]
        seen: set[Hashable] = set()
        for manifest in regular:
            period = period_of(as_utc(manifest.created_at).astimezone(zone))
            if period not in seen:
                if len(seen) == wanted:
                    break
                seen.add(period)
                reasons[manifest.id].append(f"{name} {len(seen)}/{wanted}")
            elif manifest is regular[-1] and len(seen) < wanted:  # restic keeps the oldest too
                reasons[manifest.id].append(f"oldest {name} {len(seen)}/{wanted}")
    if policy.keep_within is not None:
        since = as_utc(regular[0].created_at) - policy.keep_within
        label = f"within {format_duration(policy.keep_within)}"
        for manifest in regular:
            if as_utc(manifest.created_at) > since:
                reasons[manifest.id].append(label)


def _apply_protections(
    ordered: list[Manifest],
    regular: list[Manifest],
    policy: RetentionPolicy,
    now: datetime,
    reasons: dict[str, list[str]],
) -> None:
    """What no rule removes: the newest backups, pinned ones, young pre-restore checkpoints."""
    newest = {ordered[0].id} | ({regular[0].id} if regular else set())
    pre_restore_age = format_duration(policy.keep_pre_restore)
    for manifest in ordered:
        if manifest.id in newest:
            reasons[manifest.id].append("newest backup")
        if PINNED_LABEL in manifest.labels:
            reasons[manifest.id].append("pinned")
        young = as_utc(now) - as_utc(manifest.created_at) < policy.keep_pre_restore
        if PRE_RESTORE_LABEL in manifest.labels and young:
            reasons[manifest.id].append(f"pre-restore checkpoint younger than {pre_restore_age}")


def _decision(manifest: Manifest, reasons: list[str], *, keep: bool = True) -> Decision:
    return Decision(
        backup_id=manifest.id, created_at=as_utc(manifest.created_at), keep=keep, reasons=list(reasons)
    )
