"""The catalog on a real file location: reserve, commit, discard, list and resolve."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from redis_dr.catalog import Catalog, Reservation
from redis_dr.errors import AlreadyExistsError, IntegrityError, NotFoundError, TransientError
from redis_dr.manifest import Manifest, backup_id_for
from redis_dr.storage.file import FileStorage
from tests import manifests

INSTANCE = "sessions"
T0 = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)


class CountingStorage(FileStorage):
    """A real file location that counts the objects read whole (manifests, reservations)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: Counter[str] = Counter()

    def get(self, key: str) -> Iterator[bytes]:
        self.reads[key.rsplit("/", 1)[-1]] += 1
        return super().get(key)


def manifest_for(backup_id: str, data: bytes = b"rdb") -> Manifest:
    return manifests.manifest_for(backup_id, data, instance=INSTANCE)


def commit_new(catalog: Catalog, moment: datetime, data: bytes = b"rdb") -> Manifest:
    """Reserve, store and commit one backup the way the backup flow does."""
    reservation = catalog.reserve(moment)
    manifest = manifest_for(reservation.backup_id, data)
    catalog.storage.put_bytes(catalog.data_key(reservation.backup_id, "dump.rdb"), data)
    catalog.commit(manifest)
    return manifest


@pytest.fixture
def storage(tmp_path: Path) -> CountingStorage:
    return CountingStorage(tmp_path / "backups")


@pytest.fixture
def catalog(storage: CountingStorage) -> Catalog:
    return Catalog(storage, INSTANCE)


def test_two_runs_reserving_in_the_same_second_get_different_ids(catalog: Catalog) -> None:
    first = catalog.reserve(T0)
    second = catalog.reserve(T0)
    assert first.backup_id == backup_id_for(T0)
    assert second.backup_id == backup_id_for(T0 + timedelta(seconds=1))
    assert first.token != second.token
    assert catalog.holder(first.backup_id) == first


def test_an_id_used_by_a_backup_without_reservation_is_not_reserved_again(catalog: Catalog) -> None:
    legacy = manifest_for(backup_id_for(T0))  # made before reservations existed
    catalog.storage.put_bytes(catalog.data_key(legacy.id, "dump.rdb"), b"rdb")
    catalog.commit(legacy)
    assert catalog.reserve(T0).backup_id == backup_id_for(T0 + timedelta(seconds=1))


def test_discard_removes_only_the_own_runs_leftovers(catalog: Catalog) -> None:
    mine = catalog.reserve(T0)
    catalog.storage.put_bytes(catalog.data_key(mine.backup_id, "dump.rdb.zst"), b"partial attempt")
    assert catalog.discard_uncommitted(mine) == 1
    keys = [info.key for info in catalog.storage.list(f"{INSTANCE}/")]
    assert keys == [catalog.reservation_key(mine.backup_id)]  # the id stays reserved


def test_discard_never_touches_another_runs_data(catalog: Catalog) -> None:
    theirs = catalog.reserve(T0)
    catalog.storage.put_bytes(catalog.data_key(theirs.backup_id, "dump.rdb.zst"), b"their finished data")
    impostor = Reservation(**{**theirs.model_dump(), "token": "not-theirs"})
    with pytest.raises(IntegrityError, match="reserved by pid"):
        catalog.discard_uncommitted(impostor)
    assert catalog.storage.get_bytes(catalog.data_key(theirs.backup_id, "dump.rdb.zst")) == b"their finished data"


def test_discard_never_touches_a_committed_backup(catalog: Catalog) -> None:
    reservation = catalog.reserve(T0)
    manifest = manifest_for(reservation.backup_id)
    catalog.storage.put_bytes(catalog.data_key(manifest.id, "dump.rdb"), b"rdb")
    catalog.commit(manifest)
    assert catalog.discard_uncommitted(reservation) == 0
    assert catalog.load(manifest.id) == manifest


def test_commit_refuses_a_data_object_of_the_wrong_size(catalog: Catalog) -> None:
    reservation = catalog.reserve(T0)
    catalog.storage.put_bytes(catalog.data_key(reservation.backup_id, "dump.rdb"), b"truncated")
    manifest = manifest_for(reservation.backup_id, b"the whole rdb")
    with pytest.raises(IntegrityError, match="expected 13"):
        catalog.commit(manifest)
    with pytest.raises(NotFoundError):
        catalog.load(reservation.backup_id)


def test_commit_again_with_the_same_manifest_is_success(catalog: Catalog) -> None:
    """A retried commit whose first answer was lost finds its own manifest there."""
    manifest = commit_new(catalog, T0)
    catalog.commit(manifest)
    assert catalog.list().manifests == [manifest]


def test_commit_refuses_a_different_manifest_under_a_committed_id(catalog: Catalog) -> None:
    manifest = commit_new(catalog, T0)
    changed = manifest.model_copy(update={"labels": {"pinned": "true"}})
    with pytest.raises(AlreadyExistsError, match="different manifest"):
        catalog.commit(changed)
    assert catalog.load(manifest.id) == manifest


def test_list_reports_unreadable_manifests_and_skips_uncommitted_ids(catalog: Catalog) -> None:
    good = commit_new(catalog, T0)
    catalog.reserve(T0 + timedelta(hours=1))  # in progress: no manifest
    broken = backup_id_for(T0 + timedelta(hours=2))
    catalog.storage.put_bytes(catalog.manifest_key(broken), b"{not json")
    listing = catalog.list()
    assert listing.manifests == [good]
    assert len(listing.unreadable) == 1 and broken in listing.unreadable[0]


def test_latest_refuses_to_pass_over_an_unreadable_newest_manifest(catalog: Catalog) -> None:
    commit_new(catalog, T0)
    broken = backup_id_for(T0 + timedelta(hours=1))
    catalog.storage.put_bytes(catalog.manifest_key(broken), b"{not json")
    for selector in ("latest", "20261125-110000"):
        with pytest.raises(IntegrityError) as raised:
            catalog.resolve(selector)
        message = str(raised.value)
        assert broken in message and "choose a backup explicitly" in message
    assert catalog.resolve(backup_id_for(T0)).id == backup_id_for(T0)  # an explicit id still works


def test_latest_skips_a_backup_in_progress(catalog: Catalog) -> None:
    done = commit_new(catalog, T0)
    catalog.reserve(T0 + timedelta(minutes=5))
    assert catalog.resolve("latest") == done


def test_resolve_reads_only_the_manifests_it_needs_among_thousands(
    storage: CountingStorage, catalog: Catalog
) -> None:
    """A year of hourly backups: resolving must not read every manifest (one GET each)."""
    ids = [backup_id_for(T0 - timedelta(hours=hours)) for hours in range(3000)]
    for backup_id in ids:  # written as files directly: 3,000 fsynced puts would only slow the test
        path = storage.root / catalog.manifest_key(backup_id)
        path.parent.mkdir(parents=True)
        path.write_bytes(manifest_for(backup_id).to_json())
    storage.reads.clear()
    assert catalog.resolve("latest").id == ids[0]
    assert storage.reads["manifest.json"] == 1
    storage.reads.clear()
    assert catalog.resolve("20261020-123000").id == "20261020T120000Z"
    assert storage.reads["manifest.json"] == 1
    storage.reads.clear()
    with pytest.raises(NotFoundError, match="no backup at or before 20200101T000000Z"):
        catalog.resolve("20200101-000000")
    assert storage.reads["manifest.json"] == 0


class FlakyStorage(FileStorage):
    """A real file location whose manifest reads fail as an unreachable object store's would."""

    def get(self, key: str) -> Iterator[bytes]:
        if key.endswith("manifest.json"):
            raise TransientError("S3 temporarily failed (503)")
        return super().get(key)


def test_a_location_that_does_not_answer_is_not_called_corrupt(tmp_path: Path) -> None:
    catalog = Catalog(FlakyStorage(tmp_path), INSTANCE)
    path = tmp_path / catalog.manifest_key(backup_id_for(T0))
    path.parent.mkdir(parents=True)
    path.write_bytes(manifest_for(backup_id_for(T0)).to_json())
    with pytest.raises(TransientError):
        catalog.resolve("latest")
    with pytest.raises(TransientError):
        catalog.list()


def test_an_unreadable_manifest_says_why_once(catalog: Catalog) -> None:
    broken = backup_id_for(T0)
    catalog.storage.put_bytes(catalog.manifest_key(broken), b'{"id": "20261125T090000Z"}')
    [problem] = catalog.list().unreadable
    assert problem.count("unreadable manifest") == 1
    assert "(instance: Field required)" in problem


def test_latest_and_timestamps_pass_over_pre_restore_checkpoints_but_an_id_does_not(catalog: Catalog) -> None:
    backup = commit_new(catalog, T0)
    reservation = catalog.reserve(T0 + timedelta(minutes=5))
    checkpoint = manifest_for(reservation.backup_id).model_copy(update={"labels": {"pre-restore": "x"}})
    catalog.storage.put_bytes(catalog.data_key(checkpoint.id, "dump.rdb"), b"rdb")
    catalog.commit(checkpoint)

    assert catalog.resolve("latest") == checkpoint  # nothing skipped unless asked
    assert catalog.resolve("latest", skip_label="pre-restore") == backup
    later = (T0 + timedelta(minutes=10)).strftime("%Y%m%d-%H%M%S")
    assert catalog.resolve(later, skip_label="pre-restore") == backup
    assert catalog.resolve(checkpoint.id, skip_label="pre-restore") == checkpoint
