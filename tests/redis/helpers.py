"""Helpers shared by the Redis tests: checking and loading fetched RDB files."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from redis_dr.redis.info import max_rdb_version
from redis_dr.sandbox.redis_server import RedisServer

CHECK_RDB = "/usr/bin/redis-check-rdb"


def write_chunks(chunks: Iterable[bytes], path: Path) -> Path:
    """Write chunks to a new file (never into an existing path)."""
    with path.open("xb") as out:
        for chunk in chunks:
            out.write(chunk)
    return path


def check_rdb(path: Path) -> str:
    """Run redis-check-rdb on `path`; fail the test with its output unless it says OK."""
    result = subprocess.run([CHECK_RDB, str(path)], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "RDB looks OK" in output, output
    return output


def populate(server: RedisServer, n: int = 500) -> None:
    """Some keys of several types, a few with TTLs, in two databases."""
    pipe = server.client().pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"s:{i}", os.urandom(64))
    pipe.hset("h", mapping={f"f{i}": i for i in range(50)})
    pipe.rpush("l", *range(100))
    pipe.sadd("set", *range(30))
    pipe.zadd("z", {f"m{i}": i for i in range(30)})
    pipe.set("ttl", "x", ex=3600)
    pipe.execute()
    server.client(db=3).set("in-db3", "yes")


def snapshot_of(server: RedisServer) -> dict[int, dict[bytes, object]]:
    """DUMP of every key per database (comparable between servers of one version)."""
    result: dict[int, dict[bytes, object]] = {}
    for db in (0, 3):
        client = server.client(db=db)
        result[db] = {key: client.dump(key) for key in client.scan_iter(count=1000)}
    return result


def data_dir_with(rdb: Path, data_dir: Path) -> Path:
    """A new data dir holding `rdb` as dump.rdb, for RedisServer(data_dir=...)."""
    data_dir.mkdir()
    (data_dir / "dump.rdb").write_bytes(rdb.read_bytes())
    return data_dir


def rdb_version_of(server: RedisServer) -> int:
    """The RDB format version `server` writes (its own release's newest), from INFO server."""
    return max_rdb_version(str(server.client().info("server")["redis_version"]))
