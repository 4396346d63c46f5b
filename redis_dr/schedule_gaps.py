"""How often a cron schedule fires, and when a run of it is overdue: one definition for the
Prefect automations (a backup that did not complete in time) and the metrics (RedisBackupOld).

The interval is the longest real gap between consecutive fire times of the cron line over a
representative year, in the schedule's time zone: `0 * * * *` is 1h, `0 4 1 * *` 31d plus the
hour the clocks go back, `*/5 9-17 * * 1-5` the weekend. A run is overdue a margin after that
interval: it may start late (a worker's poll, the instance's lease held by another flow) and
take its time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from cronsim import CronSim

#: The representative window of a schedule: a year (both clock changes), from a fixed day so
#: that deploying twice derives the same interval.
WINDOW_START = date(2026, 1, 1)
WINDOW_DAYS = 366
#: The margin over the interval: a quarter of it, at least 10 minutes, at most an hour.
MARGIN_SHARE = 4
MIN_MARGIN = timedelta(minutes=10)
MAX_MARGIN = timedelta(hours=1)


def overdue_after(cron: str, timezone: str) -> timedelta | None:
    """How old the last completed run of this schedule may get: its interval plus the margin;
    None for a schedule that fires at most once."""
    interval = longest_gap(cron, timezone)
    return None if interval is None else interval + margin(interval)


def margin(interval: timedelta) -> timedelta:
    """How long after its interval a backup is overdue: a quarter of it, within [10 min, 1 h]."""
    share = timedelta(seconds=round(interval.total_seconds() / MARGIN_SHARE))
    return min(max(share, MIN_MARGIN), MAX_MARGIN)


def longest_gap(
    cron: str, timezone: str, start: date = WINDOW_START, days: int = WINDOW_DAYS
) -> timedelta | None:
    """The longest real time between two consecutive fire times of `cron` in `timezone`, over the
    window of `days` from `start` (the gap that crosses its end included); None if it fires at
    most once.

    A day's fire times are the same wall times every day (the minute and hour fields); only the
    days differ. On a day without a clock change the fire times between its first and its last
    are skipped and their longest gap (the same every such day) counted once: an every-minute
    line costs a few steps per day, not 1,440.
    """
    zone = ZoneInfo(timezone)
    minute, hour, *_ = cron.split()
    times = _times_of_day(minute, hour)
    same_day_gap = max((b - a for a, b in pairwise(times)), default=timedelta(0))
    end = datetime.combine(start, time.min, zone) + timedelta(days=days)
    fires = CronSim(cron, datetime.combine(start, time.min, zone))
    previous = next(fires, None)
    longest: timedelta | None = None
    while previous is not None:
        day = previous.date()
        if len(times) > 2 and _wall(previous) == times[0] and _no_clock_change(day, zone):
            fires = CronSim(cron, datetime.combine(day, _clock(times[-1]), zone) - timedelta(minutes=1))
            previous = next(fires)  # the day's last fire time
            longest = same_day_gap if longest is None else max(longest, same_day_gap)
            continue
        current = next(fires, None)
        if current is None:
            break
        gap = current.astimezone(UTC) - previous.astimezone(UTC)
        longest = gap if longest is None else max(longest, gap)
        if previous >= end:
            break
        previous = current
    return longest


def _times_of_day(minute: str, hour: str) -> list[timedelta]:
    """The wall times (since midnight) at which the minute and hour fields fire, in order."""
    day = datetime.combine(WINDOW_START, time.min, UTC)
    times: list[timedelta] = []
    for fire in CronSim(f"{minute} {hour} * * *", day - timedelta(minutes=1)):
        if fire.date() != day.date():
            return times
        times.append(fire - day)
    return times


def _wall(moment: datetime) -> timedelta:
    return timedelta(hours=moment.hour, minutes=moment.minute, seconds=moment.second)


def _clock(offset: timedelta) -> time:
    minutes = int(offset.total_seconds()) // 60
    return time(minutes // 60, minutes % 60)


def _no_clock_change(day: date, zone: ZoneInfo) -> bool:
    """The zone's offset is the same all day (no daylight-saving change on it)."""
    midnight = datetime.combine(day, time.min, zone)
    next_midnight = datetime.combine(day + timedelta(days=1), time.min, zone)
    return midnight.utcoffset() == next_midnight.utcoffset()
