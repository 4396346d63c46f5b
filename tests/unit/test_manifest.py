"""Manifests, backup ids and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from redis_dr.catalog import parse_timestamp
from redis_dr.errors import ConfigError, IntegrityError
from redis_dr.manifest import (
    Manifest,
    RedisSource,
    StoredFile,
    backup_id_for,
    backup_id_time,
    next_backup_id,
)
from redis_dr.pipeline import Compression


def make_manifest(backup_id: str = "20251015T140000Z") -> Manifest:
    moment = backup_id_time(backup_id)
    return Manifest(
        id=backup_id,
        instance="sessions",
        environment="production",
        mode="stream",
        created_at=moment,
        completed_at=moment,
        duration_seconds=1.5,
        source=RedisSource(
            redis_version="7.0.15",
            role="master",
            keyspace={0: {"keys": 10, "expires": 4}, 3: {"keys": 2, "expires": 0}},  # type: ignore[dict-item]
            rdb_version=10,
        ),
        files=[
            StoredFile(
                name="dump.rdb.zst",
                raw_size=100,
                raw_sha256="a" * 64,
                stored_size=40,
                stored_sha256="b" * 64,
                compression=Compression.ZSTD,
            )
        ],
        tool_version="0.1.0",
        labels={"pinned": "true"},
    )


def test_manifest_round_trips_through_json() -> None:
    manifest = make_manifest()
    again = Manifest.from_json(manifest.to_json(), where="x")
    assert again == manifest
    assert again.raw_size == 100 and again.stored_size == 40
    assert again.source.total_keys == 12


def test_unreadable_and_future_manifests_are_integrity_errors() -> None:
    with pytest.raises(IntegrityError, match="unreadable manifest s/1"):
        Manifest.from_json(b"{not json", where="s/1")
    future = make_manifest().to_json().replace(b'"format_version": 1', b'"format_version": 9')
    with pytest.raises(IntegrityError, match="upgrade redis-dr"):
        Manifest.from_json(future, where="s/2")


def test_backup_ids_sort_as_time_and_advance_by_seconds() -> None:
    moment = datetime(2025, 10, 15, 14, 0, 59, 999_000, tzinfo=UTC)
    assert backup_id_for(moment) == "20251015T140059Z"
    assert next_backup_id("20251015T140059Z") == "20251015T140100Z"
    assert next_backup_id("20251231T235959Z") == "20260101T000000Z"


@pytest.mark.parametrize(
    "text",
    ["20251015-140000", "20251015T140000Z", "2025-10-15T14:00:00Z", "2025-10-15T16:00:00+02:00"],
)
def test_timestamps_in_runbook_and_iso_forms(text: str) -> None:
    assert parse_timestamp(text) == datetime(2025, 10, 15, 14, 0, tzinfo=UTC)


def test_nonsense_timestamp_says_what_it_accepts() -> None:
    with pytest.raises(ConfigError, match="latest.*20251015-140000"):
        parse_timestamp("yesterday")


def test_a_manifest_naming_a_file_outside_its_backup_is_unreadable() -> None:
    """A tampered manifest must not lead a fetch or a copy to another key."""
    data = make_manifest().to_json().replace(b'"name": "dump.rdb.zst"', b'"name": "../x/dump.rdb.zst"')
    assert b"../x" in data
    with pytest.raises(IntegrityError, match="unreadable manifest s/1 \\(files.0.name"):
        Manifest.from_json(data, where="s/1")
