"""Helpers to prove that a restored dataset equals its source, key by key."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from redis_dr.sandbox.redis_server import RedisServer, find_redis_binary

_READ_BY_TYPE = {
    b"string": ("GET",),
    b"hash": ("HGETALL",),
    b"set": ("SMEMBERS",),
    b"zset": ("ZRANGE", 0, -1, "WITHSCORES"),
    b"list": ("LRANGE", 0, -1),
    b"stream": ("XRANGE", "-", "+"),
}


def _comparable(value: object) -> object:
    """Replies made order-independent where Redis does not promise an order (sets, hashes)."""
    if isinstance(value, set):
        return sorted(value)
    if isinstance(value, dict):
        return sorted(value.items())
    return value


#: Every key of one database: key -> (type, value, absolute expiry in ms or -1).
Keys = dict[bytes, tuple[bytes, object, int]]
#: Every non-empty database of a server: db number -> its keys.
Dataset = dict[int, Keys]


def dataset(client: redis.Redis, db: int) -> Keys:
    """Every key of one db: (type, value, absolute expiry in ms or -1)."""
    conn = client.connection_pool.connection_kwargs
    view = redis.Redis(host=conn["host"], port=conn["port"], password=conn.get("password"), db=db)
    keys = list(view.scan_iter(count=1000))
    pipe = view.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    types = pipe.execute()
    for key, kind in zip(keys, types, strict=True):
        command, *args = _READ_BY_TYPE[kind]
        pipe.execute_command(command, key, *args)
        pipe.execute_command("PEXPIRETIME", key)
    replies = pipe.execute()
    return {key: (types[i], _comparable(replies[2 * i]), replies[2 * i + 1]) for i, key in enumerate(keys)}


def databases(client: redis.Redis) -> list[int]:
    """Numbers of the non-empty databases."""
    return sorted(int(name[2:]) for name in client.info("keyspace"))


def read_dataset(client: redis.Redis) -> Dataset:
    """Every key of every non-empty database, to compare a restored server with later."""
    return {db: dataset(client, db) for db in databases(client)}


def assert_holds(expected: Dataset, restored: redis.Redis) -> int:
    """Assert `restored` holds exactly `expected`: keys, types, values and TTLs; return key count."""
    assert databases(restored) == sorted(expected)
    total = 0
    for db, want in expected.items():
        got = dataset(restored, db)
        assert got.keys() == want.keys(), f"db{db}: keys differ"
        for key, value in want.items():
            assert got[key] == value, f"db{db} key {key!r} differs"
        total += len(want)
    return total


def assert_same_data(source: redis.Redis, restored: redis.Redis) -> int:
    """Assert both servers hold exactly the same keys, types, values and TTLs; return key count."""
    return assert_holds(read_dataset(source), restored)


def check_rdb(path: Path) -> str:
    """Run redis-check-rdb on a file; return its output, assert it says OK."""
    binary = shutil.which("redis-check-rdb") or "/usr/bin/redis-check-rdb"
    result = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RDB looks OK" in result.stdout, result.stdout
    return result.stdout


def start_from_rdb(path: Path, data_dir: Path) -> RedisServer:
    """A fresh redis-server that loads `path` as its dump.rdb at start-up."""
    find_redis_binary()
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, data_dir / "dump.rdb")
    return RedisServer(data_dir=data_dir).start()
