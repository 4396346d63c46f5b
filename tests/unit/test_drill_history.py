"""Drill records in a file:// location: create-only, read back newest first, nothing skipped
silently, and never touched by the catalog or by prune's orphan cleanup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from redis_dr.catalog import Catalog
from redis_dr.drill.history import DrillRecord, history_prefix, read_history, record_key, write_record
from redis_dr.prune import apply_prune, plan_prune
from redis_dr.retention import RetentionPolicy
from redis_dr.storage import Storage, open_storage

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return open_storage(f"file://{tmp_path / 'backups'}")


def _record(days_ago: int, rto: float = 4.0, instance: str = "sessions") -> DrillRecord:
    moment = NOW - timedelta(days=days_ago)
    return DrillRecord(
        id=moment.strftime("%Y%m%dT%H%M%SZ"), instance=instance, target="t", strategy="file",
        backup_id="20261120T000000Z", backup_created_at=moment, killed_at=moment, rto_seconds=rto,
        rto_target_seconds=300, passed=True,
    )  # fmt: skip


def test_records_are_read_back_newest_first_and_at_most_the_limit(storage: Storage) -> None:
    for days in range(12, 0, -1):
        write_record(storage, _record(days, rto=float(days)))
    history = read_history(storage, "sessions", limit=10)
    assert [record.rto_seconds for record in history.records] == [float(d) for d in range(1, 11)]
    assert history.unreadable == []


def test_a_record_is_never_overwritten_and_the_same_write_again_is_done(storage: Storage) -> None:
    first = write_record(storage, _record(1, rto=4.0))
    assert write_record(storage, first) == first  # a repeat after a lost answer: the same bytes
    other = write_record(storage, _record(1, rto=9.0))  # another drill in the same second
    assert other.id != first.id
    records = {r.id: r.rto_seconds for r in read_history(storage, "sessions").records}
    assert records == {first.id: 4.0, other.id: 9.0}


def test_unreadable_records_and_strangers_are_named_not_skipped(storage: Storage) -> None:
    write_record(storage, _record(3))
    prefix = history_prefix("sessions")
    storage.put_bytes(f"{prefix}20261124T000000Z.json", b"{not json")
    storage.put_bytes(f"{prefix}20261123T000000Z.json", b'{"id": "20261123T000000Z"}')
    storage.put_bytes(f"{prefix}README", b"notes")
    other = _record(2, instance="carts")
    storage.put_bytes(record_key("sessions", other.id), other.to_json())

    history = read_history(storage, "sessions")

    assert [record.id for record in history.records] == [_record(3).id]
    text = "\n".join(history.unreadable)
    assert "20261124T000000Z.json: unreadable" in text
    assert "20261123T000000Z.json: unreadable" in text
    assert "README: not a drill record" in text
    assert "a record of instance 'carts'" in text
    assert len(history.unreadable) == 4


def test_the_catalog_and_prunes_orphan_cleanup_leave_the_drill_history_alone(storage: Storage) -> None:
    catalog = Catalog(storage, "sessions")
    orphan = catalog.reserve(datetime.now(UTC) - timedelta(days=3))  # a backup that never committed
    records = [write_record(storage, _record(days)) for days in (2, 1)]
    keys = [record_key("sessions", record.id) for record in records]
    stored = {key: storage.get_bytes(key) for key in keys}
    assert "drills" not in catalog.backup_ids()

    plan = plan_prune(storage, "sessions", RetentionPolicy(keep_last=1), datetime.now(UTC) + timedelta(days=2))
    assert [o.backup_id for o in plan.orphans] == [orphan.backup_id]
    assert not any("drills" in key for o in plan.orphans for key in o.object_keys)
    result = apply_prune(catalog, plan)

    assert result.orphans_removed == [orphan.backup_id]
    assert not list(storage.list(catalog.backup_prefix(orphan.backup_id)))
    assert {key: storage.get_bytes(key) for key in keys} == stored
    assert len(read_history(storage, "sessions").records) == 2
