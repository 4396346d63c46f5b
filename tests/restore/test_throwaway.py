"""The throwaway server a replay reads from: loaded from RDB chunks, refused when too new, always removed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redis_dr.errors import IntegrityError, UnsupportedError
from redis_dr.redis.info import max_rdb_version
from redis_dr.restore.throwaway import load_throwaway, local_redis_version
from redis_dr.sandbox.redis_server import RedisServer

pytestmark = pytest.mark.integration


def chunks_of(data: bytes, size: int = 4096) -> Iterator[bytes]:
    """`data` in small chunks, as a backup stream delivers it."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def small_rdb(redis_factory: Callable[..., RedisServer]) -> bytes:
    """An RDB with 200 keys in db 0, 3 in db 5, and one key whose expiry has passed since the save."""
    server = redis_factory()
    client = server.client()
    client.mset({f"k:{i}": f"v{i}" for i in range(200)})
    server.client(db=5).mset({"a": 1, "b": 2, "c": 3})
    expire_at = int(time.time() * 1000) + 300
    client.set("soon-gone", "x", pxat=expire_at)
    client.save()
    rdb = (server.data_dir / "dump.rdb").read_bytes()
    while time.time() * 1000 <= expire_at:  # wait until its expiry has passed, as observed on the clock
        time.sleep(0.05)
    return rdb


def test_loads_the_rdb_and_reports_keys_loaded_and_expired(small_rdb: bytes, tmp_path: Path) -> None:
    with load_throwaway(chunks_of(small_rdb), work_dir=tmp_path) as throwaway:
        assert throwaway.load.keys_loaded == 203
        assert throwaway.load.keys_expired == 1
        assert throwaway.load.rdb_bytes == len(small_rdb)
        assert throwaway.load.rdb_version == max_rdb_version(local_redis_version())
        assert throwaway.client().dbsize() == 200
        assert throwaway.client(db=5).get("b") == b"2"
        data_dir = throwaway.server.data_dir
        assert data_dir.parent == tmp_path
        assert throwaway.client().info("persistence")["loading"] == 0
    assert not data_dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_the_throwaway_wants_its_password(small_rdb: bytes, tmp_path: Path) -> None:
    import redis

    with load_throwaway(chunks_of(small_rdb), work_dir=tmp_path) as throwaway:
        anonymous = redis.Redis(host="127.0.0.1", port=throwaway.server.port)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        assert throwaway.socket_path.stat().st_mode & 0o077 == 0
        assert throwaway.socket_path.parent.stat().st_mode & 0o077 == 0
        socket_dir = throwaway.socket_path.parent
    assert not socket_dir.exists()


def test_a_newer_rdb_version_is_refused_naming_both(small_rdb: bytes, tmp_path: Path) -> None:
    local = local_redis_version()
    newest = max_rdb_version(local)
    forged = b"REDIS%04d" % (newest + 1) + small_rdb[9:]
    with pytest.raises(UnsupportedError) as caught, load_throwaway(chunks_of(forged, 5), work_dir=tmp_path):
        pass
    message = str(caught.value)
    assert f"RDB version {newest + 1}" in message
    assert f"redis-server {local} reads (up to RDB {newest})" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_the_header_is_checked_before_the_rest_is_read(small_rdb: bytes, tmp_path: Path) -> None:
    forged = b"REDIS%04d" % (max_rdb_version(local_redis_version()) + 1) + small_rdb[9:]
    delivered: list[int] = []

    def stream() -> Iterator[bytes]:
        for chunk in chunks_of(forged, 1024):
            delivered.append(len(chunk))
            yield chunk

    with pytest.raises(UnsupportedError), load_throwaway(stream(), work_dir=tmp_path):
        pass
    assert len(delivered) == 1


def test_a_corrupt_rdb_is_an_integrity_error_and_nothing_is_left(small_rdb: bytes, tmp_path: Path) -> None:
    damaged = bytearray(small_rdb)
    damaged[len(damaged) // 2 : len(damaged) // 2 + 64] = b"\xff" * 64
    # startup_timeout: RedisServer.start waits that long for a port nobody will open when the
    # server exits at once (it does not watch its process: reported to the lead).
    with (
        pytest.raises(IntegrityError, match="could not load the backup"),
        load_throwaway(chunks_of(bytes(damaged)), work_dir=tmp_path, startup_timeout=3),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_not_an_rdb_is_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(IntegrityError, match="not an RDB"),
        load_throwaway(iter([b"hello world"]), work_dir=tmp_path),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_removed_when_the_body_fails(small_rdb: bytes, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), load_throwaway(chunks_of(small_rdb), work_dir=tmp_path) as throwaway:
        process = throwaway.server._process
        raise RuntimeError("boom")
    assert process is not None and process.poll() is not None
    assert list(tmp_path.iterdir()) == []
