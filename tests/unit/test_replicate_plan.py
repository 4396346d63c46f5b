"""Replication planning, lag and verdicts: pure functions, no storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ValidationError

from redis_dr.catalog import Listing
from redis_dr.manifest import backup_id_for
from redis_dr.replicate import (
    Destination,
    DestinationResult,
    ReplicateRequest,
    ReplicateResult,
    destination_line,
    judge,
    missing_backups,
    plan_replication,
    replication_lag,
)
from redis_dr.retention import RetentionPolicy
from tests.manifests import manifest_for

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
SOURCE = "s3://backups/prod?region=eu-west-1"


def backup(moment: datetime) -> str:
    return backup_id_for(moment)


def listing(*moments: datetime, unreadable: tuple[str, ...] = ()) -> Listing:
    manifests = [manifest_for(backup_id_for(m), b"rdb", instance="sessions") for m in moments]
    return Listing(manifests=sorted(manifests, key=lambda m: m.id, reverse=True), unreadable=list(unreadable))


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


# -- what to copy -----------------------------------------------------------------------


def test_missing_backups_oldest_first_and_only_what_the_destination_lacks() -> None:
    source = listing(hours_ago(1), hours_ago(3), hours_ago(2), hours_ago(5))
    destination = listing(hours_ago(3))

    planned = plan_replication(source, destination, None, NOW)

    assert planned == [backup(hours_ago(5)), backup(hours_ago(2)), backup(hours_ago(1))]
    assert missing_backups(source, destination) == planned


def test_only_complete_backups_are_planned_an_unreadable_one_is_not() -> None:
    source = listing(hours_ago(1), unreadable=("unreadable manifest s3://b/sessions/x/manifest.json",))

    assert plan_replication(source, listing(), None, NOW) == [backup(hours_ago(1))]


def test_nothing_to_copy_when_the_destination_has_everything() -> None:
    both = listing(hours_ago(1), hours_ago(2))

    assert plan_replication(both, both, RetentionPolicy(keep_last=1), NOW) == []


def test_a_destination_with_a_policy_receives_only_what_it_keeps() -> None:
    """A second region keeping 2 monthlies gets the newest backup of each of the last 2 months only."""
    january, march = datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 3, 28, tzinfo=UTC)
    april = [datetime(2026, 4, day, tzinfo=UTC) for day in (2, 9, 16)]
    source = listing(january, march, *april)

    planned = plan_replication(source, listing(), RetentionPolicy(keep_monthly=2), NOW)

    assert planned == [backup(march), backup(april[-1])]


def test_the_destinations_own_backups_count_for_its_policy() -> None:
    """A backup only the destination holds (the source lost or pruned it) is what keep-last 2 keeps
    there with the newest: copying the older source backup would be undone by the next prune."""
    older, theirs, newest = hours_ago(3), hours_ago(2), hours_ago(1)
    source = listing(older, newest)
    destination = listing(theirs)

    assert plan_replication(source, destination, None, NOW) == [backup(older), backup(newest)]
    assert plan_replication(source, destination, RetentionPolicy(keep_last=2), NOW) == [backup(newest)]


# -- lag ------------------------------------------------------------------------------


def test_lag_is_the_source_newest_minus_the_destination_newest() -> None:
    source = listing(hours_ago(1), hours_ago(6)).manifests
    destination = listing(hours_ago(4) - timedelta(minutes=10)).manifests

    assert replication_lag(source, destination, NOW) == timedelta(hours=3, minutes=10)


def test_no_lag_when_the_destination_is_as_new_or_newer() -> None:
    source = listing(hours_ago(2)).manifests

    assert replication_lag(source, listing(hours_ago(2)).manifests, NOW) == timedelta(0)
    assert replication_lag(source, listing(hours_ago(1)).manifests, NOW) == timedelta(0)
    assert replication_lag([], listing(hours_ago(1)).manifests, NOW) == timedelta(0)
    assert replication_lag([], [], NOW) == timedelta(0)


def test_an_empty_destination_lags_by_everything_the_source_holds() -> None:
    source = listing(hours_ago(1), hours_ago(30)).manifests

    assert replication_lag(source, [], NOW) == timedelta(hours=30)


# -- verdicts -------------------------------------------------------------------------


def result_with(*destinations: DestinationResult, unreadable: list[str] | None = None) -> ReplicateResult:
    return ReplicateResult(
        instance="sessions", source=SOURCE, source_backups=3, unreadable=unreadable or [],
        destinations=list(destinations),
    )  # fmt: skip


def test_a_lag_over_the_limit_is_one_line_naming_the_destination_and_the_lag_in_words() -> None:
    late = DestinationResult(url="s3://dr-eu/prod", lag_before_seconds=11400, lag_after_seconds=11400)
    fine = DestinationResult(url="gs://dr-eu/prod", lag_before_seconds=7200, lag_after_seconds=0)

    problems = judge(result_with(late, fine), timedelta(hours=2))

    assert problems == ["s3://dr-eu/prod lags 3h10m behind the source (limit 2h)"]
    assert judge(result_with(late, fine), None) == []
    assert judge(result_with(late, fine), timedelta(hours=3, minutes=10)) == []


def test_failed_copies_and_unreadable_source_manifests_fail_the_run() -> None:
    broken = DestinationResult(url="s3://dr-eu/prod", failed=["copy of 20260420T110000Z failed: reset"])

    problems = judge(result_with(broken, unreadable=["unreadable manifest s3://b/x"]), None)

    assert problems == [
        "unreadable at the source, not copied: unreadable manifest s3://b/x",
        "s3://dr-eu/prod: copy of 20260420T110000Z failed: reset",
    ]


def test_the_line_for_a_person_says_copies_bytes_skips_failures_and_lag() -> None:
    result = DestinationResult(
        url="gs://dr-eu/prod", policy="monthly 12; min 1", missing=5, planned=2,
        copied=["20260420T110000Z", "20260420T120000Z"], bytes=3 << 20, already_present=[],
        failed=[], lag_before_seconds=11400, lag_after_seconds=0,
    )  # fmt: skip

    line = destination_line(result)

    assert line == (
        "gs://dr-eu/prod: copied 2 backup(s) (3 its policy would not keep, not copied), 3.0 MiB; "
        "0 already present; 0 failed; lag 0s (was 3h10m)"
    )


# -- the request ----------------------------------------------------------------------


def request(**fields: object) -> ReplicateRequest:
    return ReplicateRequest.model_validate(
        {"instance": "sessions", "source": SOURCE, "destinations": ["gs://dr-eu/prod"], **fields}
    )


def test_a_destination_may_be_given_by_its_url_alone_or_with_its_policy() -> None:
    made = request(destinations=["gs://dr-eu/prod", {"url": "s3://dr-eu/prod", "policy": {"keep_monthly": 12}}],
                   max_lag="2h")  # fmt: skip

    assert made.destinations == [
        Destination(url="gs://dr-eu/prod"),
        Destination(url="s3://dr-eu/prod", policy=RetentionPolicy(keep_monthly=12)),
    ]
    assert made.max_lag == timedelta(hours=2)
    assert made.parallel == 4
    assert ReplicateRequest.model_validate_json(made.model_dump_json()) == made  # a form round-trips


@pytest.mark.parametrize(
    ("destinations", "fragment"),
    [
        (
            ["s3://backups/prod/?region=us-east-1"],
            "destination 1 (s3://backups/prod/?region=us-east-1) is the same place as the source",
        ),
        (
            ["gs://dr-eu/a", "gs://dr-eu//a/"],
            "destination 2 (gs://dr-eu//a/) is the same place as destination 1",
        ),
        ([], "at least 1 item"),
    ],
    ids=["source-again", "twice", "none"],
)
def test_a_destination_that_is_no_other_place_is_refused(destinations: list[str], fragment: str) -> None:
    with pytest.raises(ValidationError, match="destinations" if not destinations else "same place") as caught:
        request(destinations=destinations)

    assert fragment in str(caught.value)


@pytest.mark.parametrize("fields", [{"parallel": 0}, {"parallel": 17}, {"max_lag": "2 hours"},
                                    {"extra": 1}, {"source": "s3://user:pw@b/p"}])  # fmt: skip
def test_bad_fields_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        request(**fields)


@pytest.mark.parametrize("model", [ReplicateRequest, Destination])
def test_every_field_has_a_description_for_the_ui_form(model: type[BaseModel]) -> None:
    assert all(field.description for field in model.model_fields.values())


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--to", "file:///tmp/a/"], "destination 1 (file:///tmp/a/) is the same place as the source"),
        (["--to", "file:///tmp/b", "--max-lag", "2x"], "--max-lag: duration '2x' is not understood"),
        (
            ["--to", "file:///tmp/b", "--parallel", "40"],
            "--parallel: Input should be less than or equal to 16",
        ),
        (["--to", "s3://user:pw@bucket/x"], "--to: storage URL s3://bucket/x contains credentials"),
    ],
    ids=["source-again", "max-lag", "parallel", "credentials"],
)
def test_the_command_refuses_a_bad_flag_in_one_line_naming_it(
    flags: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    code = main(["replicate", "--storage", "file:///tmp/a", "--instance", "sessions", *flags])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"redis-dr: error: {line}") and len(err.splitlines()) == 1, err
    assert "pw" not in err
