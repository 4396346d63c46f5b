"""Which Prefect automations an environment file stands for: pure data, no Prefect import.

Two kinds, registered by `redis-dr deploy` beside the deployments (flows/automations.py):

- run-failed (one per environment, when the file names a notification block): a run of any
  of the environment's redis-dr flows that ends Failed (TimedOut too) or Crashed notifies
  through the block. Without a block there is no one to tell: the run's own events are all.
- backup-overdue (one per scheduled backup deployment): a proactive trigger expecting a
  Completed run of that deployment within its schedule's longest interval plus a margin.
  Its firing is an event of its own (prefect.automation.triggered) and, with a block, a
  notification; it fires again every `within` while no backup completes.

The interval is the longest gap between consecutive fire times of the cron line over a
representative year, in the environment's time zone: `0 * * * *` is 1h, `0 4 1 * *` 31d plus
the hour the clocks go back, `*/5 9-17 * * 1-5` the weekend. The margin lets a run start late
(a worker's poll, the instance's lease held by another flow) and take its time.

Every automation is named `redis-dr <environment>: ...` and tagged redis-dr and
env:<environment>: deploy finds its own ones by both, updates them, removes those the file no
longer stands for, and never touches an automation it did not create.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from zoneinfo import ZoneInfo

from cronsim import CronSim
from pydantic import BaseModel

from redis_dr.deployment_plan import DeploymentSpec, deployment_specs
from redis_dr.durations import Duration, format_duration
from redis_dr.environment import EnvironmentConfig
from redis_dr.run_tags import PROJECT_TAG

#: The flow whose deployments must complete within their schedule's interval.
BACKUP_FLOW = "redis-backup"
#: The representative window of a schedule: a year (both clock changes), from a fixed day so
#: that deploying twice derives the same interval.
WINDOW_START = date(2026, 1, 1)
WINDOW_DAYS = 366
#: The margin over the interval: a quarter of it, at least 10 minutes, at most an hour.
MARGIN_SHARE = 4
MIN_MARGIN = timedelta(minutes=10)
MAX_MARGIN = timedelta(hours=1)


class AutomationKind(StrEnum):
    """What an automation watches."""

    RUN_FAILED = "run-failed"
    BACKUP_OVERDUE = "backup-overdue"


class AutomationSpec(BaseModel):
    """One automation to register."""

    name: str
    kind: AutomationKind
    environment: str
    tags: list[str]
    #: The notification block (`<block-type-slug>/<block-name>`), or None: the firing is an event only.
    notify: str | None
    #: backup-overdue: the deployment (flow/deployment), its schedule and the window of the trigger.
    deployment: str | None = None
    cron: str | None = None
    timezone: str | None = None
    interval: Duration | None = None
    within: Duration | None = None

    @property
    def trigger(self) -> str:
        """What fires it, in words (of a backup-overdue one: what its deployment has not done)."""
        if self.kind is AutomationKind.RUN_FAILED:
            return f"a run of a redis-dr flow of {self.environment} ends Failed or Crashed"
        assert self.within is not None and self.interval is not None
        return (
            f"no run completed within {format_duration(self.within)} "
            f"({self.cron} in {self.timezone}: {format_duration(self.interval)} apart at most)"
        )

    @property
    def description(self) -> str:
        """The automation's description on the server."""
        what = (
            self.trigger
            if self.kind is AutomationKind.RUN_FAILED
            else f"{self.deployment} has {self.trigger}"
        )
        return (
            f"Fires when {what}. Registered by `redis-dr deploy` from the {self.environment} environment "
            "file: a change made here is replaced by the next deploy."
        )

    @property
    def subject(self) -> str:
        """The notification's subject (a template the server renders)."""
        if self.kind is AutomationKind.RUN_FAILED:
            return f"redis-dr {self.environment}: {{{{ flow.name }}}} {{{{ flow_run.state.name }}}}"
        assert self.within is not None
        return (
            f"redis-dr {self.environment}: no backup by {self.deployment} for {format_duration(self.within)}"
        )

    @property
    def body(self) -> str:
        """The notification's text (a template the server renders with the run that failed)."""
        if self.kind is AutomationKind.RUN_FAILED:
            return (
                "Run {{ flow_run.name }} of {{ flow.name }} (deployment {{ deployment.name }}) ended "
                "{{ flow_run.state.name }} at {{ flow_run.state.timestamp }}:\n"
                "{{ flow_run.state.message }}\n"
                "Its logs and artifact: {{ flow_run|ui_url }}"
            )
        return (
            f"{self.deployment} has {self.trigger}. The newest backup is older "
            "than the schedule allows. Look at its last runs (Failed? Late? still waiting for the "
            "instance's lease?) and at the worker of its work pool."
        )


def automation_specs(environment: EnvironmentConfig) -> list[AutomationSpec]:
    """Every automation the environment file stands for, in a stable order."""
    env = environment.environment
    block = environment.notifications.block
    tags = [PROJECT_TAG, f"env:{env}"]
    specs: list[AutomationSpec] = []
    if block is not None:
        specs.append(
            AutomationSpec(
                name=f"{name_prefix(env)}a run failed or crashed",
                kind=AutomationKind.RUN_FAILED,
                environment=env,
                tags=tags,
                notify=block,
            )
        )
    for deployment in _scheduled_backups(environment):
        for schedule in deployment.schedules:
            interval = longest_gap(schedule.cron, schedule.timezone)
            if interval is None:
                continue  # it fires at most once: there is no interval to miss (said by `automation_notes`)
            specs.append(
                AutomationSpec(
                    name=f"{name_prefix(env)}backup overdue, {deployment.full_name}",
                    kind=AutomationKind.BACKUP_OVERDUE,
                    environment=env,
                    tags=tags,
                    notify=block,
                    deployment=deployment.full_name,
                    cron=schedule.cron,
                    timezone=schedule.timezone,
                    interval=interval,
                    within=interval + margin(interval),
                )
            )
    return specs


def automation_notes(environment: EnvironmentConfig) -> list[str]:
    """What the file schedules that gets no overdue automation, and why (said by deploy)."""
    return [
        f"{deployment.full_name} has no overdue alert: its schedule {schedule.cron} does not fire twice"
        for deployment in _scheduled_backups(environment)
        for schedule in deployment.schedules
        if longest_gap(schedule.cron, schedule.timezone) is None
    ]


def name_prefix(environment: str) -> str:
    """How the names of an environment's automations start (deploy finds its own ones by it)."""
    return f"{PROJECT_TAG} {environment}: "


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


def _scheduled_backups(environment: EnvironmentConfig) -> list[DeploymentSpec]:
    return [
        spec for spec in deployment_specs(environment) if spec.flow_name == BACKUP_FLOW and spec.schedules
    ]


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
