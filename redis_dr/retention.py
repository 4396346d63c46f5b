"""Which backups to keep: a retention policy with restic `forget` semantics.

`RetentionPolicy` is the policy of one storage location (each location has its
own: a cheaper second region may keep monthlies for a year and nothing else).
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from redis_dr.durations import Duration, format_duration
from redis_dr.restore.source import PRE_RESTORE_LABEL

#: A backup with this label is never removed by a prune (its value does not matter).
PINNED_LABEL = "pinned"

__all__ = ["PINNED_LABEL", "PRE_RESTORE_LABEL", "RetentionPolicy"]

#: (field, name in descriptions and reasons), in the order restic applies them.
PERIOD_RULES: tuple[tuple[str, str], ...] = (
    ("keep_hourly", "hourly"),
    ("keep_daily", "daily"),
    ("keep_weekly", "weekly"),
    ("keep_monthly", "monthly"),
    ("keep_yearly", "yearly"),
)


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
    timezone: str | None = Field(
        default=None,
        description="IANA time zone in which hours, days, weeks, months and years are counted "
        "(e.g. Europe/Berlin). Empty: UTC.",
    )
    keep_pre_restore: Duration = Field(
        default=timedelta(days=7),
        description="Keep the checkpoints a restore takes of its target first ('pre-restore' label) "
        "this long, measured from now, e.g. 7d.",
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"time zone {value!r} is not known: give an IANA name such as Europe/Berlin or UTC"
            ) from None
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
