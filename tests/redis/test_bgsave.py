"""Snapshots by BGSAVE against real redis-server processes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from redis_dr.errors import NotFoundError, ServerFailureError
from redis_dr.redis.bgsave import bgsave_snapshot
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.redis.errors import translate
from redis_dr.redis.info import read_server_facts
from redis_dr.sandbox.redis_server import RedisServer
from tests.redis.helpers import check_rdb, data_dir_with, populate, snapshot_of, write_chunks

pytestmark = pytest.mark.integration

Factory = Callable[..., RedisServer]


def test_bgsave_snapshot(redis_factory: Factory, tmp_path: Path) -> None:
    source = redis_factory()
    populate(source)
    client = source.client()
    before = read_server_facts(client)
    assert before.keyspace[0].key_count == 505 and before.keyspace[3].key_count == 1

    with bgsave_snapshot(client, poll_interval=0.05) as snap:
        assert snap.path == str(source.data_dir / "dump.rdb")
        rdb = write_chunks(snap, tmp_path / "bgsave.rdb")
    assert before.rdb_saves is not None  # Redis >= 7.0: our save is told apart by its counter
    assert snap.facts.rdb_saves == before.rdb_saves + 1
    assert snap.lastsave >= before.lastsave
    assert rdb.stat().st_size == snap.size
    check_rdb(rdb)
    restored = redis_factory(data_dir=data_dir_with(rdb, tmp_path / "restored"))
    assert snapshot_of(restored) == snapshot_of(source)


def test_open_file_survives_a_later_save(redis_factory: Factory, tmp_path: Path) -> None:
    source = redis_factory()
    populate(source, n=10)
    client = source.client()
    with bgsave_snapshot(client, poll_interval=0.05) as snap:
        client.set("added-later", "x")
        with bgsave_snapshot(client, poll_interval=0.05):
            pass  # renames a newer dump.rdb over the path
        rdb = write_chunks(snap, tmp_path / "first.rdb")
    assert "16 keys read" in check_rdb(rdb)  # 15 in db0 + 1 in db3, not the later key


def test_waits_for_a_running_save(redis_factory: Factory, tmp_path: Path) -> None:
    source = redis_factory()
    client = source.client()
    client.mset({f"k{i}": i for i in range(100)})
    client.config_set("rdb-key-save-delay", 15000)  # 100 keys x 15 ms: a 1.5 s save
    client.bgsave()
    client.config_set("rdb-key-save-delay", 0)  # the running child keeps its copy
    first = read_server_facts(client)
    assert first.rdb_bgsave_in_progress

    with bgsave_snapshot(client, poll_interval=0.05) as snap:
        check_rdb(write_chunks(snap, tmp_path / "after-wait.rdb"))
    assert snap.lastsave > first.lastsave
    # Ours started only after the running save had ended: the server's log shows the order.
    events = [line for line in source.log().splitlines() if "Background saving" in line]
    assert [line.partition("* ")[2].split(" by pid")[0] for line in events] == [
        "Background saving started",
        "Background saving terminated with success",
        "Background saving started",
        "Background saving terminated with success",
    ], events


def test_failed_bgsave_is_loud(redis_factory: Factory, tmp_path: Path) -> None:
    source = redis_factory({"save": "3600 1", "enable-protected-configs": "local"})
    client = source.client()
    client.set("k", "v")
    gone = tmp_path / "gone"
    gone.mkdir()
    client.config_set("dir", str(gone))
    shutil.rmtree(gone)  # the child cannot create its temp file

    try:
        with (
            pytest.raises(ServerFailureError, match=r"BGSAVE failed.*REFUSES WRITES \(MISCONF\)"),
            bgsave_snapshot(client, dump_path=gone / "dump.rdb", poll_interval=0.05, timeout=20),
        ):
            pass
        with pytest.raises(redis.ResponseError) as misconf:
            client.set("k", "w")
        err = translate(misconf.value, RedisEndpoint.from_url(source.url, env={}), "SET")
        assert isinstance(err, ServerFailureError) and "REFUSES WRITES" in str(err)
    finally:
        client.config_set("dir", str(source.data_dir))
        client.config_set("save", "")  # so the server stops at once


def test_dump_file_not_on_this_host(redis_factory: Factory, tmp_path: Path) -> None:
    client = redis_factory().client()
    with (
        pytest.raises(NotFoundError, match="needs the server's data dir on this host"),
        bgsave_snapshot(client, dump_path=tmp_path / "elsewhere.rdb", poll_interval=0.05),
    ):
        pass
