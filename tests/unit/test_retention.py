"""Retention: the policy model and restic `forget` semantics in golden tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from pydantic import ValidationError

from redis_dr.manifest import Manifest, backup_id_for
from redis_dr.prune import PruneRequest
from redis_dr.retention import RetentionPolicy, decide
from tests.manifests import manifest_for


def test_policy_defaults_and_description() -> None:
    empty = RetentionPolicy()
    assert not empty.has_rules()
    assert empty.min_keep == 1
    assert empty.keep_pre_restore == timedelta(days=7)
    assert empty.describe() == "no retention rule; min 1"

    policy = RetentionPolicy(keep_last=3, keep_hourly=24, keep_daily=7, keep_within="30d")  # type: ignore[arg-type]
    assert policy.has_rules()
    assert policy.describe() == "last 3, hourly 24, daily 7, within 30d; min 1"
    assert RetentionPolicy(keep_monthly=12, timezone="Europe/Berlin").describe() == (
        "monthly 12; min 1; periods in Europe/Berlin"
    )


def test_policy_round_trips_through_json() -> None:
    policy = RetentionPolicy(keep_within="1d12h", keep_pre_restore="3d", keep_yearly=2)  # type: ignore[arg-type]
    dumped = policy.model_dump(mode="json", exclude_none=True)
    assert dumped == {"keep_yearly": 2, "keep_within": "1d12h", "min_keep": 1, "keep_pre_restore": "3d"}
    assert RetentionPolicy.model_validate(dumped) == policy
    properties = RetentionPolicy.model_json_schema()["properties"]
    assert all(field.get("description") for field in properties.values())


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"keep_last": 0}, "greater than or equal to 1"),
        ({"min_keep": 0}, "greater than or equal to 1"),
        ({"timezone": "Mars/Olympus"}, "IANA"),
        ({"keep_within": "1y"}, "not understood"),
        ({"keep_everything": True}, "Extra inputs are not permitted"),
    ],
)
def test_policy_refuses_bad_fields(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RetentionPolicy.model_validate(fields)
    assert words in str(caught.value)


# -- decide: golden tables ------------------------------------------------------------------------

NOW = datetime(2025, 6, 18, 12, 0, tzinfo=UTC)


def _backup(text: str) -> Manifest:
    """'2025-01-10 18:00' (UTC), optionally followed by labels: '2025-01-10 18:00 pinned pre-restore'."""
    day, clock, *labels = text.split()
    moment = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)
    manifest = manifest_for(backup_id_for(moment), b"x", instance="sessions")
    return manifest.model_copy(update={"labels": dict.fromkeys(labels, "t")})


def _kept(backups: list[str], policy: RetentionPolicy, now: datetime = NOW) -> set[str]:
    decisions = decide([_backup(b) for b in backups], policy, now)
    return {f"{d.created_at:%Y-%m-%d %H:%M}" for d in decisions if d.keep}


def _times(backups: list[str]) -> list[str]:
    return [" ".join(b.split()[:2]) for b in backups]


GOLDEN: list[tuple[str, list[str], dict[str, object], set[str]]] = [
    (
        "keep-last keeps the newest N",
        ["2025-01-05 00:00", "2025-01-04 00:00", "2025-01-03 00:00", "2025-01-02 00:00"],
        {"keep_last": 2},
        {"2025-01-05 00:00", "2025-01-04 00:00"},
    ),
    (
        "daily: days without a backup are skipped, the newest of a day counts",
        [
            "2025-01-10 18:00", "2025-01-10 09:00",  # two on the 10th: the 18:00 one
            "2025-01-08 12:00",  # the 9th has none: skipped, not counted
            "2025-01-05 23:00", "2025-01-05 01:00",
            "2025-01-01 12:00",  # a fourth day: beyond daily 3
        ],
        {"keep_daily": 3},
        {"2025-01-10 18:00", "2025-01-08 12:00", "2025-01-05 23:00"},
    ),
    (
        "daily with days left after the oldest: restic keeps the oldest too",
        ["2025-01-02 10:00", "2025-01-02 08:00", "2025-01-01 20:00", "2025-01-01 06:00"],
        {"keep_daily": 7},
        {"2025-01-02 10:00", "2025-01-01 20:00", "2025-01-01 06:00"},
    ),
    (
        "hourly: several in one hour, the newest counts",
        ["2025-01-01 10:50", "2025-01-01 10:10", "2025-01-01 09:59", "2025-01-01 09:00", "2025-01-01 07:30"],
        {"keep_hourly": 2},
        {"2025-01-01 10:50", "2025-01-01 09:59"},
    ),
    (
        "daily in UTC: the three around Berlin's midnight share one UTC day",
        ["2025-03-10 23:30", "2025-03-10 22:30", "2025-03-10 21:00", "2025-03-09 12:00"],
        {"keep_daily": 2},
        {"2025-03-10 23:30", "2025-03-09 12:00"},
    ),
    (
        "daily in Europe/Berlin: 23:30 UTC is already the next day there",
        ["2025-03-10 23:30", "2025-03-10 22:30", "2025-03-10 21:00", "2025-03-09 12:00"],
        {"keep_daily": 2, "timezone": "Europe/Berlin"},
        {"2025-03-10 23:30", "2025-03-10 22:30"},  # 11 March 00:30 and 10 March 23:30 in Berlin
    ),
    (
        "daily in Europe/Berlin across the spring DST change (30 March 2025)",
        # 31 Mar 00:30 CEST, 30 Mar 23:30 CEST, 30 Mar 00:30 CET
        ["2025-03-30 22:30", "2025-03-30 21:30", "2025-03-29 23:30"],
        {"keep_daily": 2, "timezone": "Europe/Berlin"},
        {"2025-03-30 22:30", "2025-03-30 21:30"},
    ),
    (
        "the same backups in UTC days",
        ["2025-03-30 22:30", "2025-03-30 21:30", "2025-03-29 23:30"],
        {"keep_daily": 2},
        {"2025-03-30 22:30", "2025-03-29 23:30"},
    ),
    (
        "hourly in Europe/Berlin when autumn repeats 02:00-03:00 (26 October 2025): one wall-clock hour",
        # 03:30 CET, 02:30 CET, 02:30 CEST, 02:10 CEST, 00:00 CEST
        ["2025-10-26 02:30", "2025-10-26 01:30", "2025-10-26 00:30", "2025-10-26 00:10", "2025-10-25 22:00"],
        {"keep_hourly": 5, "timezone": "Europe/Berlin"},
        {"2025-10-26 02:30", "2025-10-26 01:30", "2025-10-25 22:00"},
    ),
    (
        "the same backups in UTC hours",
        ["2025-10-26 02:30", "2025-10-26 01:30", "2025-10-26 00:30", "2025-10-26 00:10", "2025-10-25 22:00"],
        {"keep_hourly": 5},
        {"2025-10-26 02:30", "2025-10-26 01:30", "2025-10-26 00:30", "2025-10-25 22:00"},
    ),
    (
        "ISO weeks across the year boundary: Mon 30 Dec 2024 is in week 1 of 2025",
        ["2025-01-02 12:00", "2024-12-30 12:00", "2024-12-29 12:00", "2024-12-23 12:00", "2024-12-16 12:00"],
        {"keep_weekly": 3},
        {"2025-01-02 12:00", "2024-12-29 12:00", "2024-12-16 12:00"},
    ),
    (
        "yearly: calendar years, not ISO years",
        ["2025-01-02 12:00", "2024-12-30 12:00", "2024-12-29 12:00", "2023-06-01 12:00"],
        {"keep_yearly": 2},
        {"2025-01-02 12:00", "2024-12-30 12:00"},
    ),
    (
        "monthly with a gap of months",
        ["2025-06-01 00:00", "2025-05-31 23:00", "2025-05-01 00:00", "2025-02-14 00:00", "2024-11-30 00:00"],
        {"keep_monthly": 3},
        {"2025-06-01 00:00", "2025-05-31 23:00", "2025-02-14 00:00"},
    ),
    (
        "overlapping rules: a backup kept by one rule still counts for the others",
        ["2025-01-10 18:00", "2025-01-10 09:00", "2025-01-09 18:00", "2025-01-02 18:00", "2024-12-31 18:00"],
        {"keep_last": 2, "keep_daily": 2, "keep_monthly": 2},
        {"2025-01-10 18:00", "2025-01-10 09:00", "2025-01-09 18:00", "2024-12-31 18:00"},
    ),
    (
        "keep-within is measured from the newest backup, strictly after",
        ["2025-01-10 12:00", "2025-01-09 12:01", "2025-01-09 12:00", "2025-01-08 12:00"],
        {"keep_within": "1d"},
        {"2025-01-10 12:00", "2025-01-09 12:01"},
    ),
    (
        "pinned backups are never removed",
        ["2025-01-10 12:00", "2025-01-09 12:00", "2024-01-01 00:00 pinned"],
        {"keep_last": 1},
        {"2025-01-10 12:00", "2024-01-01 00:00"},
    ),
    (
        "pre-restore checkpoints: kept 7d from now, not counted by the rules",
        [
            "2025-06-17 00:00 pre-restore",  # 1.5 days old: kept
            "2025-06-16 00:00",
            "2025-06-15 00:00",
            "2025-06-14 00:00",
            "2025-06-01 00:00 pre-restore",  # 17 days old: removed
        ],
        {"keep_last": 2},
        {"2025-06-17 00:00", "2025-06-16 00:00", "2025-06-15 00:00"},
    ),
    (
        "a pinned checkpoint stays; the newest backup stays even as an old checkpoint",
        ["2025-05-01 00:00 pre-restore", "2025-04-30 00:00", "2025-04-01 00:00 pre-restore pinned"],
        {"keep_last": 1},
        {"2025-05-01 00:00", "2025-04-30 00:00", "2025-04-01 00:00"},
    ),
    (
        "min_keep fills with the newest backups",
        ["2025-01-10 12:00", "2025-01-09 12:00", "2025-01-08 12:00", "2025-01-07 12:00"],
        {"keep_within": "1h", "min_keep": 3},
        {"2025-01-10 12:00", "2025-01-09 12:00", "2025-01-08 12:00"},
    ),
    (
        "min_keep counts what the rules already keep",
        ["2025-01-10 12:00", "2025-01-09 12:00", "2025-01-08 12:00", "2024-01-01 00:00 pinned"],
        {"keep_last": 1, "min_keep": 2},
        {"2025-01-10 12:00", "2024-01-01 00:00"},
    ),
    (
        "min_keep prefers regular backups to checkpoints",
        ["2025-01-10 12:00", "2025-01-09 12:00 pre-restore", "2025-01-08 12:00"],
        {"keep_last": 1, "min_keep": 2, "keep_pre_restore": "1d"},
        {"2025-01-10 12:00", "2025-01-08 12:00"},
    ),
    (
        "the newest backup is kept whatever the rules say",
        ["2025-01-10 12:00", "2025-01-09 12:00"],
        {"keep_within": "1s", "min_keep": 1},
        {"2025-01-10 12:00"},
    ),
]


@pytest.mark.parametrize(("backups", "fields", "expected"), [case[1:] for case in GOLDEN], ids=[c[0] for c in GOLDEN])
def test_golden_table(backups: list[str], fields: dict[str, object], expected: set[str]) -> None:
    policy = RetentionPolicy.model_validate(fields)
    assert expected <= set(_times(backups)), "the table names a backup it does not list"
    assert _kept(backups, policy) == expected


def test_stalled_backups_keep_the_last_window_before_the_newest() -> None:
    newest = NOW - timedelta(days=40)  # backups stopped 40 days ago
    backups = [f"{newest - timedelta(days=n):%Y-%m-%d %H:%M}" for n in range(100)]
    kept = _kept(backups, RetentionPolicy(keep_within=timedelta(days=30)))
    assert kept == {f"{newest - timedelta(days=n):%Y-%m-%d %H:%M}" for n in range(30)}


def test_reasons_name_every_rule_and_the_removed_say_why() -> None:
    backups = [
        "2025-06-18 09:00",
        "2025-06-18 08:00",
        "2025-06-17 09:00",
        "2025-06-16 09:00",
        "2025-06-01 00:00 pre-restore",
    ]
    policy = RetentionPolicy(keep_last=1, keep_hourly=2, keep_daily=2, keep_within=timedelta(hours=1))
    decisions = decide([_backup(b) for b in reversed(backups)], policy, NOW)
    assert [d.backup_id for d in decisions] == [_backup(b).id for b in backups], "newest first"
    assert [(d.keep, d.reasons) for d in decisions] == [
        (True, ["last 1/1", "hourly 1/2", "daily 1/2", "within 1h", "newest backup"]),
        (True, ["hourly 2/2"]),
        (True, ["daily 2/2"]),
        (False, ["no rule keeps it"]),
        (False, ["pre-restore checkpoint older than 7d"]),
    ]
    assert decisions[0].created_at == datetime(2025, 6, 18, 9, 0, tzinfo=UTC)


def test_no_rule_keeps_everything_and_nothing_is_nothing() -> None:
    backups = ["2025-01-10 12:00", "2024-01-09 12:00 pre-restore"]
    decisions = decide([_backup(b) for b in backups], RetentionPolicy(), NOW)
    assert [(d.keep, d.reasons) for d in decisions] == [(True, ["no retention rule"])] * 2
    assert decide([], RetentionPolicy(keep_last=1), NOW) == []


def test_production_policy_over_thirteen_months_of_hourly_backups() -> None:
    """24 hourly, 7 daily, 4 weekly, 12 monthly over hourly backups, as restic reasons it.

    Every hour has a backup, so every period has one and its newest is its last
    hour (23:00) except in the current period, where it is the newest backup.
    """
    newest = datetime(2025, 6, 18, 9, 0, tzinfo=UTC)  # a Wednesday
    first = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    moments = [newest - timedelta(hours=h) for h in range(int((newest - first) / timedelta(hours=1)) + 1)]
    template = manifest_for(backup_id_for(newest), b"x", instance="sessions")
    manifests = [template.model_copy(update={"id": backup_id_for(m), "created_at": m}) for m in moments]
    policy = RetentionPolicy(keep_hourly=24, keep_daily=7, keep_weekly=4, keep_monthly=12)

    decisions = decide(manifests, policy, NOW)

    def last_hour(day: date) -> datetime:
        return datetime.combine(day, time(23, 0), tzinfo=UTC)

    hourly = {newest - timedelta(hours=h) for h in range(24)}
    daily = {newest} | {last_hour(newest.date() - timedelta(days=d)) for d in range(1, 7)}
    sunday = newest.date() - timedelta(days=newest.isoweekday())  # the Sunday ending last ISO week
    weekly = {newest} | {last_hour(sunday - timedelta(weeks=w)) for w in range(3)}
    month_ends = []
    month_start = newest.date().replace(day=1)
    for _ in range(11):
        month_end = month_start - timedelta(days=1)
        month_ends.append(last_hour(month_end))
        month_start = month_end.replace(day=1)
    monthly = {newest, *month_ends}
    expected = hourly | daily | weekly | monthly
    assert month_ends[-1] == datetime(2024, 7, 31, 23, 0, tzinfo=UTC)
    # June 17 23:00 is also an hourly one, Sunday June 15 also a daily one
    assert len(expected) == 24 + 5 + 2 + 11
    assert {d.created_at for d in decisions if d.keep} == expected
    assert len(decisions) == len(manifests)


# -- the prune flow's parameter ---------------------------------------------------------------------


def test_prune_request_round_trips_as_flow_parameters() -> None:
    request = PruneRequest.model_validate(
        {
            "instance": "sessions",
            "environment": "production",
            "locations": [
                {"url": "s3://acme-backups/prod?region=eu-west-1", "policy": {"keep_hourly": 24, "keep_daily": 7}},
                {"url": "gs://acme-dr/prod", "policy": {"keep_monthly": 12, "keep_within": "30d"}},
            ],
        }
    )
    assert request.apply is False, "a dry run unless asked"
    assert request.orphan_grace == timedelta(hours=24)
    dumped = request.model_dump(mode="json")
    assert dumped["orphan_grace"] == "1d"
    assert dumped["locations"][1]["policy"]["keep_within"] == "30d"
    assert PruneRequest.model_validate(dumped) == request
    schema = PruneRequest.model_json_schema()
    assert all(field.get("description") for field in schema["properties"].values())


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"orphan_grace": "6h"}, "too short"),
        ({"locations": []}, "at least 1"),
        ({"secret": "x"}, "Extra inputs"),
        ({"locations": [{"url": "file:///b", "policy": {}}, {"url": "file:///b/", "policy": {}}]}, "same place"),
    ],
)
def test_prune_request_refuses(fields: dict[str, object], words: str) -> None:
    base: dict[str, object] = {"instance": "sessions", "locations": [{"url": "file:///b", "policy": {}}]}
    with pytest.raises(ValidationError) as caught:
        PruneRequest.model_validate(base | fields)
    assert words in str(caught.value)
