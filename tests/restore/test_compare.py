"""Logical key comparison between two servers, and sampling keys to compare."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from redis_dr.restore.compare import compare_keys, describe_key, sample_keys
from redis_dr.sandbox.redis_server import RedisServer

pytestmark = pytest.mark.integration

#: The target stores the same values in other encodings (hash tables, skiplists, quicklists).
OTHER_ENCODINGS = {
    "hash-max-listpack-entries": "0",
    "zset-max-listpack-entries": "0",
    "set-max-intset-entries": "0",
    "list-max-listpack-size": "1",
}


def write_same(client: redis.Redis, expire_at: int) -> None:
    client.set("s", "value", pxat=expire_at)
    client.rpush("l", "a", "b", "c")
    client.sadd("set", 1, 2, 3)
    client.zadd("z", {"a": 1, "b": 2})
    client.hset("h", mapping={"f": "v", "g": "w"})
    for i in range(5):
        client.xadd("x", {"i": i}, id=f"{i + 1}-0")
    client.xgroup_create("x", "g", id="0")
    client.xreadgroup("g", "c1", {"x": ">"}, count=3)
    client.xack("x", "g", "1-0")


@pytest.fixture
def pair(redis_factory: Callable[..., RedisServer]) -> tuple[redis.Redis, redis.Redis]:
    expire_at = int(time.time() * 1000) + 3_600_000
    source, target = redis_factory().client(), redis_factory(OTHER_ENCODINGS).client()
    write_same(source, expire_at)
    write_same(target, expire_at)
    return source, target


KEYS = ["s", "l", "set", "z", "h", "x"]


def test_equal_values_in_other_encodings_match(pair: tuple[redis.Redis, redis.Redis]) -> None:
    source, target = pair
    assert source.object("encoding", "h") != target.object("encoding", "h")
    assert source.dump("h") != target.dump("h")
    assert compare_keys(source, target, [*KEYS, "absent-on-both"]) == []


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda c: c.set("s", "other", keepttl=True), "key 's': string values differ"),
        (lambda c: c.lset("l", 0, "z"), "key 'l': list values differ"),
        (
            lambda c: c.srem("set", 3),
            "key 'set': set values differ (3 elements in the source, 2 in the target)",
        ),
        (lambda c: c.zadd("z", {"a": 1.5}), "key 'z': zset values differ"),
        (lambda c: c.hset("h", "f", "changed"), "key 'h': hash values differ"),
        (lambda c: c.xadd("x", {"i": 9}, id="9-0"), "key 'x': stream values differ (entries, entries-added"),
        (lambda c: c.xack("x", "g", "2-0"), "key 'x': stream values differ (groups)"),
        (lambda c: c.xgroup_setid("x", "g", "5-0"), "key 'x': stream values differ (groups)"),
        (lambda c: c.xgroup_createconsumer("x", "g", "c2"), "key 'x': stream values differ (groups)"),
        (lambda c: c.persist("s"), "key 's': expiry only in the source"),
        (lambda c: c.pexpire("l", 60_000), "key 'l': expiry only in the target"),
        (lambda c: c.pexpireat("s", int(time.time() * 1000) + 60_000), "key 's': expiry differs by"),
        (
            lambda c: c.delete("h") and c.set("h", "x"),
            "key 'h': type hash in the source, string in the target",
        ),
        (lambda c: c.delete("z"), "key 'z': type zset in the source, none in the target"),
    ],
)
def test_each_difference_is_found(
    pair: tuple[redis.Redis, redis.Redis], damage: Callable[[redis.Redis], object], expected: str
) -> None:
    source, target = pair
    damage(target)
    mismatches = compare_keys(source, target, KEYS)
    assert len(mismatches) == 1, mismatches
    assert mismatches[0].startswith(expected), mismatches


def test_values_are_never_shown(pair: tuple[redis.Redis, redis.Redis]) -> None:
    source, target = pair
    target.set("s", "top-secret-token", keepttl=True)
    assert "secret" not in " ".join(compare_keys(source, target, ["s"]))


def test_expiry_within_tolerance_matches(pair: tuple[redis.Redis, redis.Redis]) -> None:
    source, target = pair
    target.pexpireat("s", source.execute_command("PEXPIRETIME", "s") + 500)
    assert compare_keys(source, target, ["s"], expiry_tolerance_ms=1000) == []
    assert compare_keys(source, target, ["s"], expiry_tolerance_ms=0) == ["key 's': expiry differs by 500 ms"]


def test_long_key_names_are_shortened() -> None:
    key = b"session:" + b"9f" * 16
    assert describe_key(key) == "'session:9f9f9f9f'... (40 chars)"
    assert describe_key("short") == "'short'"


def test_sample_keys(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    client = server.client()
    client.mset({f"session:{i}": i for i in range(3000)} | {f"user:{i}": i for i in range(500)})
    server.client(db=4).mset({"only:a": 1, "only:b": 2})
    first = sample_keys(client, 50, match="session:*", seed=7)
    assert len(first) == len(set(first)) == 50
    assert all(key.startswith(b"session:") for key in first)
    assert sample_keys(client, 50, match="session:*", seed=7) == first
    assert sample_keys(client, 50, match="session:*", seed=8) != first
    assert sample_keys(client, 10, db=4) == [b"only:a", b"only:b"]  # a small database is sampled whole
    assert sample_keys(client, 10, db=9) == []
