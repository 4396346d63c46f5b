"""Compare keys between two servers logically: type, value, expiry; and pick keys to compare.

DUMP payloads may differ for equal values (a listpack against a hash table, a
newer encoding), so values are read back with the type's own commands. Streams
are compared entry by entry with their metadata and consumer groups (last
delivered id, pending count, consumers and their pending counts). Types this
module does not know (modules) are compared by DUMP.

Mismatch messages name keys shortened (`describe_key`): key names such as
`session:<id>` can be secrets.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import redis

#: Absolute expiries (ms) further apart than this are a mismatch.
EXPIRY_TOLERANCE_MS = 2000
_SHOWN = 16
_SAMPLE_SCAN_COUNT = 1000


def describe_key(key: bytes | str) -> str:
    """A key for messages: its first 16 characters, then its length if it is longer."""
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    return repr(text) if len(text) <= _SHOWN else f"{text[:_SHOWN]!r}... ({len(text)} chars)"


def compare_keys(
    source: redis.Redis,
    target: redis.Redis,
    keys: Iterable[bytes | str],
    *,
    expiry_tolerance_ms: int = EXPIRY_TOLERANCE_MS,
) -> list[str]:
    """One line per key of `keys` whose type, value or expiry differs between the two servers."""
    mismatches = []
    for key in keys:
        problem = _compare_one(source, target, key, expiry_tolerance_ms)
        if problem is not None:
            mismatches.append(f"key {describe_key(key)}: {problem}")
    return mismatches


def _compare_one(source: redis.Redis, target: redis.Redis, key: bytes | str, tolerance: int) -> str | None:
    kind = _text(source.type(key))
    other = _text(target.type(key))
    if kind != other:
        return f"type {kind} in the source, {other} in the target"
    if kind == "none":
        return None
    ours, theirs = _value(source, key, kind), _value(target, key, kind)
    if ours != theirs:
        return f"{kind} values differ{_difference(ours, theirs)}"
    expiry, their_expiry = _expiry(source, key), _expiry(target, key)
    if (expiry is None) != (their_expiry is None):
        return "expiry only in the " + ("source" if their_expiry is None else "target")
    if expiry is not None and their_expiry is not None and abs(expiry - their_expiry) > tolerance:
        return f"expiry differs by {abs(expiry - their_expiry)} ms"
    return None


def _value(client: redis.Redis, key: bytes | str, kind: str) -> Any:
    if kind == "string":
        return client.get(key)
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return sorted(client.smembers(key))
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "hash":
        return sorted(client.hgetall(key).items())
    if kind == "stream":
        return _stream(client, key)
    return client.dump(key)  # a module type: compared by its serialisation


def _stream(client: redis.Redis, key: bytes | str) -> dict[str, Any]:
    """Entries, the stream's ids, and each group's cursor, pending count and consumers."""
    info = client.xinfo_stream(key)
    groups = []
    for group in client.xinfo_groups(key):
        consumers = sorted(
            (_text(c["name"]), int(c["pending"])) for c in client.xinfo_consumers(key, group["name"])
        )
        groups.append(
            (
                _text(group["name"]),
                _text(group["last-delivered-id"]),
                int(group["pending"]),
                consumers,
                group.get("entries-read"),
            )
        )
    return {
        "entries": client.xrange(key, "-", "+"),
        "length": int(info["length"]),
        "last-generated-id": _text(info["last-generated-id"]),
        "max-deleted-entry-id": _text(info.get("max-deleted-entry-id", "")),
        "entries-added": info.get("entries-added"),
        "groups": sorted(groups),
    }


def _expiry(client: redis.Redis, key: bytes | str) -> int | None:
    """The key's absolute expiry in ms (PEXPIRETIME; PTTL plus the server's TIME before Redis 7)."""
    try:
        value = int(client.execute_command("PEXPIRETIME", key))  # type: ignore[no-untyped-call]
    except redis.ResponseError:
        ttl = int(client.pttl(key))
        if ttl < 0:
            return None
        seconds, micros = client.time()
        return seconds * 1000 + micros // 1000 + ttl
    return value if value >= 0 else None


def _difference(ours: Any, theirs: Any) -> str:
    """A hint of how two values differ, without showing them."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        fields = sorted(name for name in ours if ours[name] != theirs.get(name))
        return f" ({', '.join(fields)})"
    if isinstance(ours, list | bytes) and isinstance(theirs, list | bytes) and len(ours) != len(theirs):
        unit = "elements" if isinstance(ours, list) else "bytes"
        return f" ({len(ours)} {unit} in the source, {len(theirs)} in the target)"
    return ""


def sample_keys(
    client: redis.Redis, n: int, db: int = 0, match: str | None = None, *, seed: int = 0
) -> list[bytes]:
    """Up to `n` distinct keys of database `db` (matching `match`), chosen by `seed`.

    SCAN collects candidates (at least 10 x `n`, and at least 1000, or the whole
    database if it is smaller) and `seed` picks among them, so the same data and
    seed give the same sample, and a database of at most `n` keys is sampled whole.
    """
    scoped = (
        redis.Redis(connection_pool=client.connection_pool) if db == _db_of(client) else _with_db(client, db)
    )
    wanted = max(10 * n, _SAMPLE_SCAN_COUNT)
    candidates: set[bytes] = set()
    cursor = 0
    while True:
        next_cursor, keys = scoped.scan(cursor=cursor, match=match, count=_SAMPLE_SCAN_COUNT)
        cursor = int(next_cursor)
        candidates.update(k if isinstance(k, bytes) else str(k).encode() for k in keys)
        if cursor == 0 or len(candidates) >= wanted:
            break
    ordered = sorted(candidates)
    return ordered if len(ordered) <= n else sorted(random.Random(seed).sample(ordered, n))


def _db_of(client: redis.Redis) -> int:
    return int(client.connection_pool.connection_kwargs.get("db") or 0)


def _with_db(client: redis.Redis, db: int) -> redis.Redis:
    """A client like `client` (same address, credentials, TLS) on database `db`."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "db": db}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
