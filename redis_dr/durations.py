"""Durations as people write them: `30d`, `12h`, `90m`, `1d12h`.

One syntax, no guessing: a number and a unit, repeated from the largest unit to
the smallest, each unit at most once. Units: `w` (weeks), `d` (days), `h`
(hours), `m` (MINUTES), `s` (seconds). Months and years are not units (their
length varies); a bare number is refused (seconds or days?).

`Duration` is the pydantic field type: read from that string (or a `timedelta`
given in Python), held as a `timedelta`, written back as the short string in
JSON, so that Prefect forms and deployment parameters round-trip.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from redis_dr.errors import ConfigError

_UNITS: dict[str, int] = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PATTERN = re.compile(r"^(?:(\d{1,12})w)?(?:(\d{1,12})d)?(?:(\d{1,12})h)?(?:(\d{1,12})m)?(?:(\d{1,12})s)?$")
SYNTAX = "a number and a unit, largest unit first, e.g. 30d, 12h, 90m, 1d12h (units w, d, h, m = minutes, s)"
#: The longest duration accepted: a century (longer ones overflow date arithmetic, and mean a typo).
MAX_DURATION = timedelta(days=36500)


def parse_duration(text: str) -> timedelta:
    """'1d12h' -> timedelta(days=1, hours=12); anything else is a ConfigError naming the text."""
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise ConfigError(f"duration {text!r} is not understood: write {SYNTAX}")
    counts = zip(match.groups(), _UNITS, strict=True)
    seconds = sum(int(count) * _UNITS[unit] for count, unit in counts if count)
    if seconds > MAX_DURATION.total_seconds():
        raise ConfigError(f"duration {text!r} is too long: at most {MAX_DURATION.days}d (100 years)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """timedelta(days=1, hours=12) -> '1d12h'; zero is '0s'. Weeks are written as days."""
    if value < timedelta(0) or value.microseconds:
        raise ConfigError(f"duration {value} cannot be written: use whole seconds, not negative")
    if value > MAX_DURATION:
        raise ConfigError(f"duration {value} is too long: at most {MAX_DURATION.days}d (100 years)")
    remaining = int(value.total_seconds())
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        count, remaining = divmod(remaining, _UNITS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _validate(value: object) -> timedelta:
    if isinstance(value, timedelta):
        format_duration(value)  # refuses negative and fractional durations
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ConfigError(f"duration {value!r} is not understood: write {SYNTAX}")


def _field_validate(value: object) -> timedelta:
    try:
        return _validate(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


Duration = Annotated[
    timedelta,
    BeforeValidator(_field_validate),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": _PATTERN.pattern, "examples": ["30d", "12h", "1d12h"]}),
]
"""A duration field: '30d' in, timedelta held, '30d' out in JSON."""
