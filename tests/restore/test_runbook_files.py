"""Backups the runbook scripts made (`redis-backup-YYYYmmdd-HHMMSS.rdb.gz` ...) are restorable sources."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from redis_dr.errors import ConfigError, IntegrityError, NotFoundError
from redis_dr.pipeline import Compression
from redis_dr.restore.source import choose_backup, is_runbook_file, open_runbook_file
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rdb_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An RDB of 3 keys in db0 (one expiring far ahead) and 1 in db2."""
    with RedisServer(data_dir=tmp_path_factory.mktemp("rdb")) as server:
        client = server.client()
        client.set("session:a", "1")
        client.set("session:b", "2", ex=86400)
        client.hset("user:1", mapping={"name": "x"})
        client.execute_command("SELECT", 2)
        client.set("other", "y")
        client.save()
        return (server.data_dir / "dump.rdb").read_bytes()


@pytest.mark.parametrize(
    ("name", "compressed"),
    [
        ("redis-backup-20251015-140000.rdb.gz", True),
        ("redis-20251015-140000.rdb", False),
        ("redis-20251015-140000.rdb.gz", True),
        ("dump-20251015-140000.rdb", False),
    ],
)
def test_a_runbook_file_is_described_as_a_manifest_would(
    tmp_path: Path, rdb_bytes: bytes, name: str, compressed: bool
) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(rdb_bytes) if compressed else rdb_bytes)

    source = open_runbook_file(str(path), "sessions")

    manifest = source.manifest
    assert manifest.id == "20251015T140000Z"
    assert manifest.source.rdb_version == int(rdb_bytes[5:9])
    counts = {db: (s.key_count, s.expires) for db, s in (manifest.source.rdb_keyspace or {}).items()}
    assert counts == {0: (3, 1), 2: (1, 0)}
    stored = manifest.files[0]
    assert stored.compression is (Compression.GZIP if compressed else Compression.NONE)
    assert stored.raw_size == len(rdb_bytes)
    assert b"".join(source.read(stored, [])) == rdb_bytes  # read again, checked against the first reading


def test_a_file_changed_after_it_was_described_is_refused(tmp_path: Path, rdb_bytes: bytes) -> None:
    path = tmp_path / "dump-20251015-140000.rdb"
    path.write_bytes(rdb_bytes)
    source = open_runbook_file(str(path), "sessions")
    path.write_bytes(rdb_bytes[:-9] + bytes(9))  # same size, other bytes

    with pytest.raises(IntegrityError, match="corrupt"):
        b"".join(source.read(source.manifest.files[0], []))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: gzip.compress(data)[:-20], "not a readable RDB"),
        (lambda data: b"NOTREDIS0" + data[9:], "not a readable RDB"),
        (lambda data: data[: len(data) // 2], "not a complete RDB"),
    ],
    ids=["truncated-gzip", "not-rdb", "truncated-rdb"],
)
def test_a_damaged_runbook_file_is_refused_with_one_line(
    tmp_path: Path, rdb_bytes: bytes, damage: Callable[[bytes], bytes], message: str
) -> None:
    name = "redis-backup-20251015-140000.rdb.gz" if "gzip" in message else "redis-20251015-140000.rdb"
    path = tmp_path / name
    path.write_bytes(damage(rdb_bytes))

    with pytest.raises(IntegrityError, match=message) as caught:
        open_runbook_file(str(path), "sessions")
    assert "\n" not in str(caught.value)


def test_a_runbook_file_in_object_storage(storage_url: str, rdb_bytes: bytes) -> None:
    storage = open_storage(storage_url)
    storage.put("old/redis-backup-20240101-000000.rdb.gz", [gzip.compress(rdb_bytes)])
    base, _, query = storage_url.partition("?")
    selector = f"{base}/old/redis-backup-20240101-000000.rdb.gz" + (f"?{query}" if query else "")

    source = choose_backup(selector, [], "sessions")

    assert source.manifest.id == "20240101T000000Z"
    assert b"".join(source.read(source.manifest.files[0], [])) == rdb_bytes


def test_missing_and_directory_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        open_runbook_file(str(tmp_path / "redis-20250101-000000.rdb"), "sessions")
    with pytest.raises(ConfigError, match="directory"):
        open_runbook_file(str(tmp_path), "sessions")


@pytest.mark.parametrize(
    ("selector", "is_file"),
    [
        ("latest", False),
        ("20251015T140000Z", False),
        ("20251015-140000", False),
        ("redis-backup-20251015-140000.rdb.gz", True),
        ("/var/backups/anything.rdb", True),
        ("s3://bucket/x/dump-20251015-140000.rdb", True),
    ],
)
def test_selectors_and_files_are_told_apart(selector: str, is_file: bool) -> None:
    assert is_runbook_file(selector) is is_file


def test_a_file_that_is_not_an_rdb_is_refused_at_its_header_without_being_read_through(tmp_path: Path) -> None:
    from collections.abc import Iterator

    from redis_dr.restore.source import _describe
    from redis_dr.storage.file import FileStorage

    class Endless(FileStorage):
        """A huge object: one chunk of zeros, then the test fails if more is asked for."""

        def get(self, key: str) -> Iterator[bytes]:
            yield b"\0" * 65536
            raise AssertionError("read past the header of a file that is not an RDB")

    with pytest.raises(IntegrityError, match="not a readable RDB"):
        _describe(Endless(tmp_path), "dump-20250101-000000.rdb", "sessions", datetime(2025, 1, 1, tzinfo=UTC))
