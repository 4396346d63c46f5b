"""The manifest records the keys the snapshot itself holds, not only what INFO said before it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from redis_dr.backup import StoredSnapshot, commit_backup, store_snapshot
from redis_dr.catalog import Catalog
from redis_dr.config import build_request
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage

pytestmark = pytest.mark.integration


def replica_state(server: RedisServer) -> str | None:
    """The state of the server's first replica link (`wait_bgsave` until it forks), or None."""
    link = server.client().info("replication").get("slave0")
    return link.get("state") if isinstance(link, dict) else None


def wait_for_replica_waiting_for_its_snapshot(server: RedisServer, timeout: float = 30) -> None:
    """Block until the backup's replica link is attached and the server has not forked yet."""
    deadline = time.monotonic() + timeout
    while replica_state(server) != "wait_bgsave":
        assert time.monotonic() < deadline, "the backup never asked for a snapshot"
        time.sleep(0.02)


def test_keys_written_after_info_are_counted_from_the_rdb(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    # The server waits 5 s before it forks for a diskless sync: writes in that window are
    # in the RDB, but not in the INFO the backup read before asking for the snapshot.
    server = redis_factory({"repl-diskless-sync-delay": "5"})
    client = server.client()
    client.mset({f"before:{n}": n for n in range(50)})
    client.set("expiring", "x", ex=3600)
    client.select(3)
    client.set("db3:key", "x")
    client.select(0)
    storage = open_storage(f"file://{tmp_path}")
    request = build_request(instance="busy", redis_url=server.url, storage=storage.url)
    reservation = Catalog(storage, "busy").reserve(datetime.now(UTC))
    result: list[StoredSnapshot] = []
    worker = threading.Thread(
        target=lambda: result.append(
            store_snapshot(request, RedisEndpoint.from_url(server.url), storage, reservation)
        )
    )
    worker.start()
    wait_for_replica_waiting_for_its_snapshot(server)
    client.mset({f"during:{n}": n for n in range(200)})
    client.delete("before:0")
    assert replica_state(server) == "wait_bgsave", "the snapshot began before the writes were done"
    worker.join(timeout=120)

    manifest = commit_backup(request, storage, result[0])
    source = manifest.source
    assert source.keyspace[0].key_count == 51  # INFO, read before the snapshot
    assert source.rdb_keyspace is not None and source.rdb_count_problem is None
    assert source.rdb_keyspace[0].key_count == 51 + 200 - 1
    assert source.rdb_keyspace[0].expires == 1
    assert source.rdb_keyspace[3].key_count == 1
    assert source.total_keys == 251  # what a restore of this backup will hold
