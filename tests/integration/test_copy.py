"""Copying a committed backup between real locations: verified, manifest last, idempotent."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from redis_dr import copy as copy_module
from redis_dr.catalog import Catalog
from redis_dr.copy import copy_backup
from redis_dr.errors import AlreadyExistsError, IntegrityError, StorageFullError
from redis_dr.manifest import Manifest
from redis_dr.storage import Storage, open_storage
from tests.fixtures.storage_servers import TEST_BUCKET
from tests.manifests import manifest_for
from tests.servers.fakegcs import FakeGCS
from tests.servers.seaweedfs import SeaweedFS

pytestmark = pytest.mark.integration

INSTANCE = "sessions"
DATA_SIZE = 12 * 1024 * 1024 + 12345  # several S3 parts of 5 MiB, and a remainder


@pytest.fixture
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A factory: location(kind) opens a fresh, empty location of that kind (file, s3, gcs)."""
    opened: list[Storage] = []

    def open_location(kind: str) -> Storage:
        unique = uuid.uuid4().hex
        if kind == "file":
            url = f"file://{tmp_path / unique}"
        elif kind == "s3":
            server: SeaweedFS = request.getfixturevalue("seaweedfs")
            url = f"s3://{TEST_BUCKET}/{unique}?endpoint={server.endpoint}&region=us-east-1&part_size=5MiB"
        else:
            gcs: FakeGCS = request.getfixturevalue("fake_gcs")
            url = f"gs://{TEST_BUCKET}/{unique}?endpoint={gcs.endpoint}&part_size=5MiB"
        storage = open_storage(url)
        opened.append(storage)
        return storage

    yield open_location
    for storage in opened:
        storage.close()


def committed_backup(storage: Storage, data: bytes, backup_id: str = "") -> Manifest:
    """Store `data` as a committed backup in `storage`, as the backup flow would."""
    catalog = Catalog(storage, INSTANCE)
    backup_id = backup_id or catalog.reserve(datetime.now(UTC)).backup_id
    manifest = manifest_for(backup_id, data, instance=INSTANCE, name="dump.rdb.zst")
    storage.put(catalog.data_key(backup_id, "dump.rdb.zst"), iter([data]))
    catalog.commit(manifest)
    return manifest


def stored_keys(storage: Storage) -> list[str]:
    return [info.key for info in storage.list(f"{INSTANCE}/")]


PAIRS = [("file", "s3"), ("s3", "s3"), ("s3", "gcs"), ("gcs", "s3"), ("gcs", "gcs"), ("gcs", "file"), ("file", "file")]


@pytest.mark.parametrize(("source_kind", "destination_kind"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_copy_is_byte_identical_and_idempotent(location: object, source_kind: str, destination_kind: str) -> None:
    source, destination = location(source_kind), location(destination_kind)  # type: ignore[operator]
    data = os.urandom(DATA_SIZE)
    manifest = committed_backup(source, data)

    outcome = copy_backup(source, destination, INSTANCE, manifest.id)

    assert outcome.status == "copied" and outcome.bytes == DATA_SIZE
    assert outcome.server_side == (source_kind == destination_kind)
    copy = Catalog(destination, INSTANCE)
    assert copy.load(manifest.id) == manifest
    assert destination.get_bytes(copy.manifest_key(manifest.id)) == source.get_bytes(copy.manifest_key(manifest.id))
    assert destination.get_bytes(copy.data_key(manifest.id, "dump.rdb.zst")) == data

    again = copy_backup(source, destination, INSTANCE, manifest.id)
    assert again.status == "already-present" and again.bytes == 0


def test_an_interrupted_copy_resumes_without_copying_intact_objects_again(location: object) -> None:
    source, destination = location("file"), location("s3")  # type: ignore[operator]
    manifest = committed_backup(source, os.urandom(DATA_SIZE))
    key = Catalog(source, INSTANCE).data_key(manifest.id, "dump.rdb.zst")
    destination.put(key, source.get(key))  # the data arrived, then the copy died before the manifest

    outcome = copy_backup(source, destination, INSTANCE, manifest.id)

    assert outcome.status == "copied" and outcome.bytes == 0
    assert Catalog(destination, INSTANCE).load(manifest.id) == manifest


def test_a_damaged_leftover_at_the_destination_is_replaced(location: object) -> None:
    source, destination = location("file"), location("gcs")  # type: ignore[operator]
    data = os.urandom(DATA_SIZE)
    manifest = committed_backup(source, data)
    key = Catalog(source, INSTANCE).data_key(manifest.id, "dump.rdb.zst")
    destination.put_bytes(key, data[:1000])  # what a broken earlier attempt might leave

    copy_backup(source, destination, INSTANCE, manifest.id)

    assert destination.get_bytes(key) == data


def test_a_corrupt_source_is_not_copied(location: object) -> None:
    source, destination = location("file"), location("s3")  # type: ignore[operator]
    data = os.urandom(DATA_SIZE)
    manifest = committed_backup(source, data)
    path = Path(source.url.removeprefix("file://")) / INSTANCE / manifest.id / "dump.rdb.zst"
    with path.open("r+b") as handle:  # bit rot in the primary location
        handle.seek(DATA_SIZE // 2)
        handle.write(b"\x00" * 16)

    with pytest.raises(IntegrityError, match="source is corrupt"):
        copy_backup(source, destination, INSTANCE, manifest.id)

    assert stored_keys(destination) == []


def test_a_different_manifest_under_the_same_id_is_refused(location: object) -> None:
    source, destination = location("file"), location("file")  # type: ignore[operator]
    manifest = committed_backup(source, b"one backup")
    committed_backup(destination, b"another backup", backup_id=manifest.id)

    with pytest.raises(AlreadyExistsError, match="different manifest"):
        copy_backup(source, destination, INSTANCE, manifest.id)


@pytest.fixture
def tiny_disk(tmpfs_factory: Callable[[str], Path]) -> Path:
    """A 2 MiB tmpfs: a real file system that fills up mid-copy."""
    return tmpfs_factory("2m")


def test_a_destination_that_fills_up_mid_copy_gets_no_manifest(location: object, tiny_disk: Path) -> None:
    source = location("s3")  # type: ignore[operator]
    destination = open_storage(f"file://{tiny_disk}")
    data = os.urandom(DATA_SIZE)
    manifest = committed_backup(source, data)

    with pytest.raises(StorageFullError, match=str(tiny_disk)):
        copy_backup(source, destination, INSTANCE, manifest.id)

    assert stored_keys(destination) == []
    assert not any(tiny_disk.rglob("*")), "nothing partial left, no empty directories"
    assert Catalog(source, INSTANCE).load(manifest.id) == manifest
    assert source.get_bytes(Catalog(source, INSTANCE).data_key(manifest.id, "dump.rdb.zst")) == data


def test_an_id_reserved_at_the_destination_by_another_run_is_not_touched(location: object) -> None:
    """Each region backs up to its own bucket first: the same second's id may be taken there."""
    source, destination = location("file"), location("file")  # type: ignore[operator]
    manifest = committed_backup(source, os.urandom(1000))
    theirs = Catalog(destination, INSTANCE)
    theirs.storage.put_bytes(theirs.reservation_key(manifest.id), b'{"backup_id": "taken"}')
    their_data = theirs.data_key(manifest.id, "dump.rdb.zst")
    destination.put_bytes(their_data, b"another run's snapshot, not committed yet")

    with pytest.raises(AlreadyExistsError, match="not copying into it"):
        copy_backup(source, destination, INSTANCE, manifest.id)

    assert destination.get_bytes(their_data) == b"another run's snapshot, not committed yet"
    assert not any(key.endswith("manifest.json") for key in stored_keys(destination))


def test_a_backup_made_before_reservations_is_copied_and_resumed(location: object) -> None:
    source, destination = location("file"), location("s3")  # type: ignore[operator]
    manifest = committed_backup(source, os.urandom(DATA_SIZE))
    source.delete(Catalog(source, INSTANCE).reservation_key(manifest.id))
    key = Catalog(source, INSTANCE).data_key(manifest.id, "dump.rdb.zst")
    destination.put(key, source.get(key))
    Catalog(destination, INSTANCE).claim(manifest.id, copy_module._claim_for(
        source.get_bytes(Catalog(source, INSTANCE).manifest_key(manifest.id)), manifest
    ))  # an earlier attempt claimed the id, copied the data, and died

    outcome = copy_backup(source, destination, INSTANCE, manifest.id)

    assert outcome.status == "copied" and outcome.bytes == 0
    assert Catalog(destination, INSTANCE).load(manifest.id) == manifest
