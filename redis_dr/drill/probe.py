"""The drill's look at the server: a marker key and the key counts just before the kill, and again
after the restore.

The marker is written after the backup was taken, just before the kill: if it is
still there afterwards, the target does not hold the backup's data. It expires by
itself after a day, in case a failed drill leaves it in a server's data.
"""

from __future__ import annotations

import redis

from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.errors import translate
from redis_dr.redis.info import read_server_facts

MARKER_PREFIX = "redis-dr:drill-marker:"
_MARKER_TTL_MS = 24 * 3600 * 1000


def marker_key(tag: str) -> str:
    """The marker key of the drill tagged `tag`."""
    return f"{MARKER_PREFIX}{tag}"


def mark_and_count(endpoint: RedisEndpoint, tag: str) -> dict[int, int]:
    """Write the marker, then count the keys per database (the marker among them)."""
    client = open_client(endpoint)
    try:
        client.set(marker_key(tag), tag, px=_MARKER_TTL_MS)
        facts = read_server_facts(client)
    except redis.RedisError as exc:
        raise translate(exc, endpoint, "SET") from None
    finally:
        client.close()
    return {db: stats.key_count for db, stats in sorted(facts.keyspace.items())}


def count_and_look_for_marker(endpoint: RedisEndpoint, tag: str) -> tuple[dict[int, int], bool]:
    """Keys per database now, and whether the marker is still there."""
    client = open_client(endpoint)
    try:
        present = bool(client.exists(marker_key(tag)))
        facts = read_server_facts(client)
    except redis.RedisError as exc:
        raise translate(exc, endpoint, "EXISTS") from None
    finally:
        client.close()
    return {db: stats.key_count for db, stats in sorted(facts.keyspace.items())}, present
