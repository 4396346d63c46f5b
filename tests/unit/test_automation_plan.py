"""Which automations an environment file stands for, and how long a backup may be overdue."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from redis_dr.automation_plan import AutomationKind, automation_notes, automation_specs, name_prefix
from redis_dr.environment import EnvironmentConfig, load_environment
from redis_dr.schedule_gaps import longest_gap, margin

DEPLOYMENTS = Path(__file__).resolve().parents[2] / "deployments"


def environment(**changes: Any) -> EnvironmentConfig:
    data: dict[str, Any] = {
        "environment": "demo",
        "prefect": {"timezone": "Europe/Berlin"},
        "schedules": {"backup": "0 * * * *", "aof_backup": "0 2 * * *", "validate": "0 3 * * *"},
        "instances": {
            "sessions": {"target": "local:///etc/redis/redis.conf", "storage": ["file:///srv/a"]},
            "cache": {"redis_url": "redis://127.0.0.1:6390/0", "storage": ["file:///srv/b"]},
        },
        **changes,
    }
    return EnvironmentConfig.model_validate(data)


def test_production_watches_both_backup_schedules_and_has_no_one_to_notify_yet() -> None:
    specs = automation_specs(load_environment(DEPLOYMENTS / "production.yaml"))

    assert [(s.kind, s.deployment, s.interval, s.within) for s in specs] == [
        (AutomationKind.BACKUP_OVERDUE, "redis-backup/production-sessions", timedelta(hours=1),
         timedelta(hours=1, minutes=15)),
        # Daily at 02:00 Berlin: 25 hours apart the night the clocks go back; an hour's margin at most.
        (AutomationKind.BACKUP_OVERDUE, "redis-backup/production-sessions-aof", timedelta(hours=25),
         timedelta(hours=26)),
    ]  # fmt: skip
    assert all(s.notify is None for s in specs)  # the file's notifications line is commented out
    assert all(s.tags == ["redis-dr", "env:production"] for s in specs)


def test_a_notification_block_adds_the_failed_run_automation_and_every_automation_notifies_through_it() -> (
    None
):
    specs = automation_specs(environment(notifications={"block": "custom-webhook/redis-dr-oncall"}))

    assert [s.name for s in specs] == [
        "redis-dr demo: a run failed or crashed",
        "redis-dr demo: backup overdue, redis-backup/demo-cache",
        "redis-dr demo: backup overdue, redis-backup/demo-sessions",
        "redis-dr demo: backup overdue, redis-backup/demo-sessions-aof",  # only sessions has files
    ]
    assert all(s.notify == "custom-webhook/redis-dr-oncall" for s in specs)
    assert all(s.name.startswith(name_prefix("demo")) for s in specs)
    failed = specs[0]
    assert failed.kind is AutomationKind.RUN_FAILED and failed.deployment is None and failed.within is None
    # The server renders the failure's templates with the run; the overdue text is plain.
    assert "{{ flow_run.state.message }}" in failed.body and "{{ flow_run.state.name }}" in failed.subject
    overdue = specs[2]
    assert overdue.subject == "redis-dr demo: no backup by redis-backup/demo-sessions for 1h15m"
    assert overdue.body.startswith(
        "redis-backup/demo-sessions has no run completed within 1h15m (0 * * * * in Europe/Berlin: 1h apart"
    )
    assert "{" not in overdue.subject + overdue.body
    assert "replaced by the next deploy" in overdue.description


def test_without_a_backup_schedule_nothing_is_watched_and_without_a_block_no_failure_is_told() -> None:
    assert automation_specs(environment(schedules={"validate": "0 3 * * *"})) == []


def test_a_schedule_that_never_fires_twice_gets_no_overdue_automation_and_deploy_says_so() -> None:
    never = environment(schedules={"backup": "* * */20 * 1L"})  # the 1st or 21st being a month's last Monday

    assert automation_specs(never) == []
    assert automation_notes(never) == [
        "redis-backup/demo-cache has no overdue alert: its schedule * * */20 * 1L does not fire twice",
        "redis-backup/demo-sessions has no overdue alert: its schedule * * */20 * 1L does not fire twice",
    ]
    assert automation_notes(environment()) == []


@pytest.mark.parametrize(
    ("cron", "zone", "gap"),
    [
        ("0 * * * *", "UTC", timedelta(hours=1)),
        ("*/5 * * * *", "Europe/Berlin", timedelta(minutes=5)),
        ("0 */6 * * *", "UTC", timedelta(hours=6)),
        ("0 */6 * * *", "Europe/Berlin", timedelta(hours=7)),  # 00:00 to 06:00 the night of the change
        ("30 2 * * *", "Europe/Berlin", timedelta(hours=25)),
        ("30 2 * * *", "Australia/Lord_Howe", timedelta(hours=24, minutes=30)),  # a half-hour change
        ("*/5 9-17 * * 1-5", "UTC", timedelta(days=2, hours=15, minutes=5)),  # Friday 17:55 to Monday 09:00
        ("0 4 1 * *", "Europe/Berlin", timedelta(days=31, hours=1)),  # October has 31 days and 25 hours
        ("0 0 29 2 *", "UTC", timedelta(days=4 * 365 + 1)),  # the gap past the window's end counts
        ("*/10 * * 1-11 *", "UTC", timedelta(days=31, minutes=10)),  # not in December
    ],
)
def test_the_interval_is_the_longest_real_gap_between_fire_times_in_the_zone(
    cron: str, zone: str, gap: timedelta
) -> None:
    assert longest_gap(cron, zone) == gap


def every_fire_time_gap(cron: str, zone: str, start: date, days: int) -> timedelta | None:
    """The definition: the longest gap between consecutive fire times, each one visited."""
    tz = ZoneInfo(zone)
    end = datetime.combine(start, time.min, tz) + timedelta(days=days)
    fires = CronSim(cron, datetime.combine(start, time.min, tz))
    previous, longest = next(fires, None), None
    while previous is not None and (current := next(fires, None)) is not None:
        gap = current.astimezone(UTC) - previous.astimezone(UTC)
        longest = gap if longest is None else max(longest, gap)
        if previous >= end:
            break
        previous = current
    return longest


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Santiago", "Australia/Lord_Howe", "UTC"])
@pytest.mark.parametrize("cron", ["*/7 * * * *", "15,45 1-3 * * *", "* 2 * * *", "*/5 9-17 * * 1-5"])
def test_skipping_inside_ordinary_days_finds_what_visiting_every_fire_time_finds(
    cron: str, zone: str
) -> None:
    # A week or two around each clock change of 2026: Berlin (Mar 29, Oct 25), Santiago (Apr 5, Sep 6),
    # Lord Howe (Apr 5, Oct 4).
    for start, days in (
        (date(2026, 3, 25), 14),
        (date(2026, 9, 3), 7),
        (date(2026, 10, 1), 7),
        (date(2026, 10, 22), 7),
    ):
        assert longest_gap(cron, zone, start=start, days=days) == every_fire_time_gap(cron, zone, start, days)


def test_the_margin_is_a_quarter_of_the_interval_between_ten_minutes_and_an_hour() -> None:
    assert margin(timedelta(minutes=5)) == timedelta(minutes=10)
    assert margin(timedelta(hours=2)) == timedelta(minutes=30)
    assert margin(timedelta(hours=6)) == timedelta(hours=1)
    assert margin(timedelta(days=31)) == timedelta(hours=1)


def test_deploys_json_writes_the_durations_as_environment_files_do() -> None:
    [spec] = automation_specs(environment(schedules={"backup": "0 */6 * * *"}, instances={
        "cache": {"redis_url": "redis://127.0.0.1:6390/0", "storage": ["file:///srv/b"]}}))  # fmt: skip
    dumped = spec.model_dump(mode="json")
    assert (dumped["interval"], dumped["within"]) == ("7h", "8h")
