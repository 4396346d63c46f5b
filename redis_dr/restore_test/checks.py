"""What a restore test asserts beyond a restore's own verification.

Per database, the keys that never expire must all be there, and only expiring
keys may be missing (expired since the backup was taken). Sampled keys' values
must be readable with their type's own read command. And the restored key count
must be near the live server's, as the runbook compares test and production.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import redis

from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.errors import translate
from redis_dr.redis.info import KeyspaceStats
from redis_dr.redis.rdb_sample import BUILTIN_TYPES, SampledKey
from redis_dr.restore.compare import describe_key
from redis_dr.restore.verify import KeySample, Result, VerifyReport

#: Elements read of a sampled collection: enough to prove it readable, bounded for huge keys.
READ_ELEMENTS = 100
_NONE = KeyspaceStats(keys=0, expires=0)


def check_expiry_accounting(
    report: VerifyReport, expected: dict[int, KeyspaceStats], actual: dict[int, KeyspaceStats]
) -> None:
    """Per database: every key without an expiry is there; what is missing had an expiry."""
    for db in sorted(set(expected) | set(actual)):
        want, have = expected.get(db, _NONE), actual.get(db, _NONE)
        persistent_want = want.key_count - want.expires
        persistent_have = have.key_count - have.expires
        missing = want.key_count - have.key_count
        detail = (
            f"db{db}: {have.key_count} keys, {have.expires} with an expiry; the backup has "
            f"{want.key_count}, {want.expires} with an expiry"
        )
        if persistent_have != persistent_want:
            report.add(
                f"db{db} expiries",
                Result.FAIL,
                f"{detail}: {persistent_have} keys without an expiry, the backup has {persistent_want}",
            )
        elif missing < 0 or missing > want.expires:
            report.add(f"db{db} expiries", Result.FAIL, f"{detail}: {missing:+d} keys unaccounted for")
        else:
            expired = f": {missing} expired since the backup, as their TTL said" if missing else ""
            report.add(f"db{db} expiries", Result.PASS, detail + expired)


def check_values_readable(report: VerifyReport, endpoint: RedisEndpoint, sample: KeySample) -> None:
    """Each sampled key's value is read with its type's command (GET, HGETALL...); none may fail."""
    if not sample.sampled:
        return
    problems: list[str] = []
    read = 0
    for db in sorted({key.db for key in sample.sampled}):
        client = open_client(dataclasses.replace(endpoint, db=db))
        try:
            for sampled in (key for key in sample.sampled if key.db == db):
                problem = _read_value(client, sampled)
                if problem is None:
                    read += 1
                elif problem:
                    problems.append(f"db{db} key {describe_key(sampled.key)}: {problem}")
        except redis.ConnectionError as exc:
            raise translate(exc, endpoint, "reading sampled values") from None
        finally:
            client.close()
    if problems:
        detail = f"{len(problems)} sampled values cannot be read: " + "; ".join(problems[:3])
        report.add("sampled values", Result.FAIL, detail)
    else:
        report.add(
            "sampled values", Result.PASS, f"{read} sampled values read back with their type's command"
        )


def _read_value(client: redis.Redis, sampled: SampledKey) -> str | None:
    """None when read; '' when the key is gone (expired: counted elsewhere); else what failed."""
    key, last = sampled.key, READ_ELEMENTS - 1
    readers: dict[str, Callable[[], Any]] = {
        "string": lambda: client.get(key),
        "hash": lambda: client.hscan(key, count=READ_ELEMENTS),
        "list": lambda: client.lrange(key, 0, last),
        "set": lambda: client.sscan(key, count=READ_ELEMENTS),
        "zset": lambda: client.zrange(key, 0, last, withscores=True),
        "stream": lambda: client.xrange(key, count=READ_ELEMENTS),
    }
    try:
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind == "none":
            return ""
        reader = readers.get(kind) if kind in BUILTIN_TYPES else None
        value = reader() if reader is not None else client.dump(key)
    except redis.ResponseError as exc:
        return str(exc)
    if value is None:
        return "" if client.exists(key) == 0 else "read back nothing"
    return None


def check_against_source(
    report: VerifyReport, restored: int, source: int | None, tolerance: float, why_not: str | None
) -> None:
    """The restored key count against the live server's now: within `tolerance` (a fraction)."""
    if source is None:
        report.add("live server", Result.WARN, f"not compared: {why_not or 'no live server given'}")
        return
    allowed = int(tolerance * max(source, 1))
    difference = restored - source
    detail = (
        f"{restored} keys restored, the live server has {source} now ({difference:+d}; "
        f"allowed ±{allowed}, {tolerance:.0%})"
    )
    report.add("live server", Result.PASS if abs(difference) <= allowed else Result.FAIL, detail)


def total_keys(keyspace: dict[int, KeyspaceStats]) -> int:
    """Keys of every database."""
    return sum(stats.key_count for stats in keyspace.values())
