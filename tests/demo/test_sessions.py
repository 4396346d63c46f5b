"""The session-store generator: types, TTLs, value sizes, determinism, size target."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from cli.demo_sessions import SessionStoreSummary, populate_session_store
from redis_dr.sandbox.redis_server import RedisServer

pytestmark = pytest.mark.integration

DAY = 86_400


def _bytes(value: object) -> bytes:
    assert isinstance(value, bytes), value
    return value


def _snapshot(server: RedisServer) -> dict[bytes, tuple[bytes, object]]:
    """Every key with its type and content (TTLs left out: they tick)."""
    client = server.client()
    out: dict[bytes, tuple[bytes, object]] = {}
    for key in client.scan_iter(count=1000):
        kind = _bytes(client.type(key))
        content: object
        if kind == b"string":
            content = client.get(key)
        elif kind == b"hash":
            content = sorted(client.hgetall(key).items())
        elif kind == b"set":
            content = sorted(client.smembers(key))
        elif kind == b"zset":
            content = client.zrange(key, 0, -1, withscores=True)
        else:
            content = client.lrange(key, 0, -1)
        out[key] = (kind, content)
    return out


def test_types_ttls_and_sizes(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    client = server.client()
    summary = populate_session_store(client, sessions=600, seed=7)

    assert isinstance(summary, SessionStoreSummary)
    assert 600 <= summary.sessions < 620
    assert client.dbsize() == summary.total_keys
    assert summary.total_keys == sum(summary.by_type().values())

    types: Counter[str] = Counter()
    prefixes: Counter[str] = Counter()
    for key in client.scan_iter(count=1000):
        types[_bytes(client.type(key)).decode()] += 1
        prefixes[key.split(b":")[0].decode()] += 1
    assert dict(types) == {k: v for k, v in summary.by_type().items() if v}
    assert prefixes["session"] == summary.sessions
    assert prefixes["csrf"] == summary.csrf_tokens > 0
    assert summary.users > 0 and summary.activity_lists > 0
    assert summary.ratelimit_zsets > 0 and summary.leaderboards > 0

    with_ttl = 0
    sizes = []
    for key in client.scan_iter(match="session:*", count=1000):
        assert len(key) == len("session:") + 32
        int(key[len("session:") :], 16)  # uuid hex
        value = client.get(key)
        assert value is not None
        sizes.append(len(value))
        ttl = client.ttl(key)
        if ttl != -1:
            with_ttl += 1
            assert 15 * 60 <= ttl <= 30 * DAY
    assert with_ttl >= 0.85 * summary.sessions
    assert min(sizes) >= 200 and max(sizes) <= 4096
    sizes.sort()
    median = sizes[len(sizes) // 2]
    assert 350 <= median <= 1200, median
    assert sizes[int(len(sizes) * 0.95)] > 2 * median  # a long tail
    # Encrypted-looking: Fernet tokens and raw binary blobs both present.
    fernet = sum(
        1 for key in client.scan_iter(match="session:*") if _bytes(client.get(key)).startswith(b"gAAAAA")
    )
    assert 0.4 * summary.sessions < fernet < 0.9 * summary.sessions

    for key in client.scan_iter(match="csrf:*"):
        assert 0 < client.ttl(key) <= 3600
    for key in client.scan_iter(match="ratelimit:*"):
        assert 0 < client.ttl(key) <= 3600
    for key in client.scan_iter(match="activity:*"):
        assert 0 < client.ttl(key) <= 7 * DAY
    user = client.hgetall("user:1")
    assert {b"email", b"name", b"locale", b"plan", b"created_at"} <= set(user)
    members = client.smembers("user:1:sessions")
    assert members and all(client.exists(b"session:" + _bytes(m)) for m in members)


def test_same_seed_same_data_other_seed_other_data(redis_factory: Callable[..., RedisServer]) -> None:
    a, b, c = redis_factory(), redis_factory(), redis_factory()
    sa = populate_session_store(a.client(), sessions=300, seed=42)
    sb = populate_session_store(b.client(), sessions=300, seed=42)
    sc = populate_session_store(c.client(), sessions=300, seed=43)
    assert sa == sb
    assert _snapshot(a) == _snapshot(b)
    assert set(_snapshot(a)) != set(_snapshot(c))
    assert sc.sessions >= 300


def test_target_rdb_bytes_is_close(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    client = server.client(socket_timeout=60)
    target = 5_000_000
    summary = populate_session_store(client, target_rdb_bytes=target, seed=3)
    assert summary.estimated_rdb_bytes >= target
    client.save()
    actual = (server.data_dir / "dump.rdb").stat().st_size
    assert abs(actual - target) / target < 0.05, (actual, target)


def test_sessions_and_target_are_exclusive(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    with pytest.raises(ValueError):
        populate_session_store(server.client(), sessions=10, target_rdb_bytes=10_000)
