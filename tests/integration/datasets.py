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


def _stream_value(view: redis.Redis, key: bytes) -> object:
    """A stream's entries and its consumer groups (last delivered id, pending, consumers)."""
    entries = view.execute_command("XRANGE", key, "-", "+")  # type: ignore[no-untyped-call]
    groups = view.execute_command("XINFO", "GROUPS", key)  # type: ignore[no-untyped-call]
    return entries, sorted(tuple(map(repr, group)) for group in groups)


def dataset(client: redis.Redis, db: int) -> Keys:
    """Every key of one db: (type, value, absolute expiry in ms or -1); streams with their groups."""
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
    result: Keys = {}
    for i, key in enumerate(keys):
        value = _stream_value(view, key) if types[i] == b"stream" else _comparable(replies[2 * i])
        result[key] = (types[i], value, replies[2 * i + 1])
    return result


def fill_every_type(client: redis.Redis) -> None:
    """Keys of every type in dbs 0, 3 and 9: TTLs, big and small encodings, a stream with
    consumer groups and pending entries (what a restore must bring back key for key)."""
    conn = client.connection_pool.connection_kwargs
    pipe = client.pipeline(transaction=False)
    for i in range(300):
        pipe.set(f"session:{i}", f"data-{i}" * 10, ex=86_400 + i)
    pipe.set("counter", 42)
    pipe.hset("user:1", mapping={"name": "ada", "visits": 3})
    pipe.hset("user:big", mapping={f"f{i}": "v" * 80 for i in range(600)})
    pipe.rpush("queue", *range(50))
    pipe.sadd("tags", "a", "b", "c")
    pipe.zadd("scores", {f"p{i}": i / 7 for i in range(200)})
    for i in range(40):
        pipe.xadd("events", {"n": i})
    pipe.execute()
    client.xgroup_create("events", "workers", id="0")
    client.xreadgroup("workers", "alice", {"events": ">"}, count=7)
    client.xgroup_create("events", "audit", id="$")
    for db in (3, 9):
        other = redis.Redis(host=conn["host"], port=conn["port"], password=conn.get("password"), db=db)
        other.set(f"only-in-db{db}", db, px=7_200_000)
        other.hset(f"hash-db{db}", "k", "v")


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
