"""Which backups a validation reads, what its request accepts, and how verdicts are read and told."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from redis_dr.errors import NotFoundError
from redis_dr.manifest import Manifest
from redis_dr.restore.source import PRE_RESTORE_LABEL
from redis_dr.validate import BackupCheck, ValidateRequest, check_line, choose_backups, summary
from redis_dr.validate_tools import ends_in_partial_command, rdb_verdict
from tests.manifests import manifest_for

IDS = [f"2026112{day}T010000Z" for day in range(5, 0, -1)]  # newest first: the 25th .. the 21st


def manifests(*labelled: str) -> list[Manifest]:
    """One manifest per id, newest first; the ids in `labelled` are pre-restore checkpoints."""
    result = []
    for backup_id in IDS:
        manifest = manifest_for(backup_id, b"REDIS0010", instance="sessions")
        if backup_id in labelled:
            manifest = manifest.model_copy(update={"labels": {PRE_RESTORE_LABEL: "yes"}})
        result.append(manifest)
    return result


def chosen(selector: str, sample: int, seed: int = 1, **kwargs: object) -> tuple[list[str], int]:
    picked, older = choose_backups(manifests(), selector, sample, random.Random(seed), **kwargs)  # type: ignore[arg-type]
    return [m.id for m in picked], older


def test_latest_alone_is_the_newest() -> None:
    assert chosen("latest", 0) == ([IDS[0]], 4)


def test_latest_passes_over_a_pre_restore_checkpoint_which_can_still_be_sampled() -> None:
    picked, older = choose_backups(manifests(IDS[0]), "latest", 4, random.Random(1))
    assert [m.id for m in picked] == IDS[1:]
    assert older == 3


def test_the_sample_is_older_backups_newest_first_and_differs_with_the_seed() -> None:
    ids, older = chosen("latest", 2)
    assert ids[0] == IDS[0] and older == 4
    assert len(ids) == 3 and set(ids[1:]) < set(IDS[1:]) and ids[1] > ids[2]
    draws = {tuple(chosen("latest", 2, seed)[0]) for seed in range(20)}
    assert len(draws) > 1, "the sample is always the same backups"


def test_a_sample_larger_than_the_history_takes_all_of_it() -> None:
    assert chosen("latest", 100) == (IDS, 4)


def test_an_id_or_a_time_selects_and_samples_only_older_backups() -> None:
    assert chosen(IDS[2], 10) == (IDS[2:], 2)
    assert chosen("2026-11-23T12:00:00Z", 10) == (IDS[2:], 2)
    assert chosen("20261123-005959", 0) == ([IDS[3]], 1)


def test_an_unreadable_selected_backup_is_no_target_but_its_older_ones_are_sampled() -> None:
    ids, older = choose_backups(
        [m for m in manifests() if m.id != IDS[1]],
        IDS[1],
        5,
        random.Random(1),
        unreadable=frozenset({IDS[1]}),
    )
    assert [m.id for m in ids] == IDS[2:] and older == 3


def test_a_selector_that_names_nothing_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="no backup 20250101T000000Z of instance sessions"):
        chosen("20250101T000000Z", 0, where=" of instance sessions")
    with pytest.raises(NotFoundError, match="no backup at or before 20250101T000000Z"):
        chosen("2025-01-01T00:00:00Z", 0)
    with pytest.raises(NotFoundError, match="no backups"):
        choose_backups([], "latest", 3, random.Random(1))


def test_only_unreadable_manifests_leave_nothing_to_validate_but_are_no_error() -> None:
    assert choose_backups([], "latest", 3, random.Random(1), unreadable=frozenset({IDS[0]})) == ([], 0)


def test_the_request_refuses_what_it_cannot_do() -> None:
    request = ValidateRequest(instance="sessions", storage="file:///backups")  # type: ignore[arg-type]
    assert request.storage == ["file:///backups"] and request.backup == "latest" and request.sample == 0
    refused: list[dict[str, object]] = [
        {"sample": 101}, {"sample": -1}, {"backup": "yesterday"}, {"password": "x"}, {"storage": []},
    ]  # fmt: skip
    for bad in refused:
        with pytest.raises(ValidationError):
            ValidateRequest.model_validate({"instance": "sessions", "storage": ["file:///backups"], **bad})
    fields = ValidateRequest.model_json_schema()["properties"]
    assert all(field.get("description") for field in fields.values())


@pytest.mark.parametrize(
    ("tail", "partial"),
    [
        (b"", True),
        (b"*", True),
        (b"*3\r", True),
        (b"*3\r\n$3\r\nSET\r\n$1\r\nk", True),
        (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r", True),
        (b"*1\r\n$5\r\nMULTI\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", True),  # an unfinished transaction
        (b"garbage\r\n", False),
        (b"*2\r\n$3\r\nGETX\r\n", False),  # a bulk string longer than its length says
        (b"*x\r\n", False),
        (b"*1\r\n+OK\r\n", False),
    ],
)
def test_a_partial_command_is_told_from_damage(tail: bytes, partial: bool) -> None:
    assert ends_in_partial_command(tail) is partial


def test_redis_check_rdb_verdicts_are_one_line() -> None:
    ok = "[offset 0] Checking RDB file /dev/stdin\n[offset 99] Checksum OK\n[offset 99] \\o/ RDB looks OK! \\o/\n"
    assert rdb_verdict(0, ok).ok
    failed = (
        "--- RDB ERROR DETECTED ---\n[offset 299996] Unexpected EOF reading RDB file\n"
        "[additional info] While doing: read-object-value\n[info] 13699 keys read\n"
    )
    verdict = rdb_verdict(1, failed)
    assert not verdict.ok
    assert verdict.line == (
        "redis-check-rdb: Unexpected EOF reading RDB file at byte 299996 (while doing read-object-value)"
    )
    assert rdb_verdict(-9, "").line == "redis-check-rdb: no output (exit status -9)"


def test_verdict_lines() -> None:
    good = BackupCheck(backup_id=IDS[0], location="file:///b", ok=True, checks=["sha256", "1 keys in 1 db"])
    bad = BackupCheck(
        backup_id=IDS[1], location="s3://b/p", ok=False, problems=[f"{IDS[1]}: one", f"{IDS[1]}: two"]
    )
    assert check_line(good) == f"OK {IDS[0]} (sha256, 1 keys in 1 db)"
    assert check_line(bad, with_location=True) == f"FAILED {IDS[1]}: one (and 1 more) [s3://b/p]"
    assert summary([good, bad]) == f"1 of 2 backup(s) failed validation: s3://b/p: {IDS[1]}: one"
