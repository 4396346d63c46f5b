"""Snapshots by replication stream against real redis-server processes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from redis_dr.errors import AccessDeniedError, TransientError, UnsupportedError
from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.rdb import parse_rdb_version
from redis_dr.redis.replication import replication_snapshot
from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.redis_server import RedisServer
from tests.redis.helpers import check_rdb, data_dir_with, populate, rdb_version_of, snapshot_of, write_chunks

pytestmark = pytest.mark.integration

Factory = Callable[..., RedisServer]
DISKLESS = {"repl-diskless-sync": "yes", "repl-diskless-sync-delay": "0"}
DISK = {"repl-diskless-sync": "no"}


def endpoint(server: RedisServer, auth: str = "") -> RedisEndpoint:
    return RedisEndpoint.from_url(f"redis://{auth}127.0.0.1:{server.port}/0", env={})


@pytest.mark.parametrize(
    ("config", "payload_format"), [(DISKLESS, "diskless"), (DISK, "disk")], ids=["diskless", "disk"]
)
def test_stream_snapshot_round_trip(
    redis_factory: Factory, tmp_path: Path, config: dict[str, str], payload_format: str
) -> None:
    source = redis_factory(config)
    populate(source)
    before = sorted(os.listdir(source.data_dir))

    with replication_snapshot(open_client(endpoint(source)), chunk_size=4096) as stream:
        assert stream.payload_format == payload_format
        assert stream.rdb_only
        rdb = write_chunks(stream, tmp_path / "fetched.rdb")

    size = rdb.stat().st_size
    assert stream.bytes_read == size
    assert stream.declared_size == (size if payload_format == "disk" else None)
    assert parse_rdb_version(rdb.read_bytes()[:9]) == stream.rdb_version == rdb_version_of(source)
    assert "keys read" in check_rdb(rdb)
    if payload_format == "diskless":
        # rdb-only + diskless: the server never touched its own dump.rdb
        assert sorted(os.listdir(source.data_dir)) == before
    restored = redis_factory(data_dir=data_dir_with(rdb, tmp_path / "restored"))
    assert snapshot_of(restored) == snapshot_of(source)
    assert source.client().ping()


def test_stream_waits_through_the_servers_diskless_sync_delay(redis_factory: Factory, tmp_path: Path) -> None:
    # Redis's own default waits 5 s before it forks (other replicas may come) and sends keepalive
    # newlines meanwhile; test servers skip the wait (tests/fixtures), this one keeps 2 s of it.
    source = redis_factory({"repl-diskless-sync": "yes", "repl-diskless-sync-delay": "2"})
    populate(source, n=50)
    with replication_snapshot(open_client(endpoint(source)), first_byte_timeout=30) as stream:
        assert stream.payload_format == "diskless"
        rdb = write_chunks(stream, tmp_path / "delayed.rdb")
    assert "Delay next BGSAVE for diskless SYNC" in source.log()
    check_rdb(rdb)
    restored = redis_factory(data_dir=data_dir_with(rdb, tmp_path / "restored"))
    assert snapshot_of(restored) == snapshot_of(source)


def test_abandoned_stream_closes_the_replica_link(redis_factory: Factory) -> None:
    source = redis_factory(DISKLESS)
    populate(source)
    client = open_client(endpoint(source))
    with replication_snapshot(client, chunk_size=1024) as stream:
        next(iter(stream))
    assert client.ping()  # the pool hands out a fresh, non-replica connection
    replicas = source.client().info("replication")["connected_slaves"]
    assert replicas == 0


def test_acl_user_with_stream_permissions(redis_factory: Factory, tmp_path: Path) -> None:
    source = redis_factory(DISKLESS)
    populate(source, n=50)
    source.client().acl_setuser(
        "backup",
        enabled=True,
        passwords=["+s3cret"],
        commands=["+sync", "+replconf", "+ping", "+info"],
    )
    client = open_client(endpoint(source, "backup:s3cret@"))
    with replication_snapshot(client) as stream:
        check_rdb(write_chunks(stream, tmp_path / "acl.rdb"))


def test_acl_user_without_replconf_is_refused(redis_factory: Factory) -> None:
    source = redis_factory(DISK)
    source.client().acl_setuser(
        "backup", enabled=True, passwords=["+s3cret"], commands=["+sync", "+ping", "+info"]
    )
    before = sorted(os.listdir(source.data_dir))
    with (
        pytest.raises(AccessDeniedError, match=r"\+sync \+replconf \+ping \+info") as info,
        replication_snapshot(open_client(endpoint(source, "backup:s3cret@"))),
    ):
        pass
    assert "s3cret" not in str(info.value)
    # we stopped before SYNC: no silent fallback BGSAVE rewrote the server's dump.rdb
    assert sorted(os.listdir(source.data_dir)) == before


def test_wrong_password(redis_factory: Factory) -> None:
    source = redis_factory(password="right-one")
    with (
        pytest.raises(AccessDeniedError, match="refused the password") as info,
        replication_snapshot(open_client(endpoint(source, ":wrong-one@"))),
    ):
        pass
    assert "wrong-one" not in str(info.value) and "right-one" not in str(info.value)


def test_password_from_environment(redis_factory: Factory, tmp_path: Path) -> None:
    source = redis_factory(DISKLESS, password="from-env")
    ep = RedisEndpoint.from_url(f"redis://127.0.0.1:{source.port}", env={"REDIS_PASSWORD": "from-env"})
    with replication_snapshot(open_client(ep)) as stream:
        check_rdb(write_chunks(stream, tmp_path / "env.rdb"))


def test_unreachable_port() -> None:
    ep = RedisEndpoint.from_url(f"redis://127.0.0.1:{free_port()}/0", env={})
    with (
        pytest.raises(TransientError, match=r"^cannot reach Redis at 127\.0\.0\.1:\d+: connection refused$"),
        replication_snapshot(open_client(ep, connect_timeout=2)),
    ):
        pass


def test_sync_disabled(redis_factory: Factory) -> None:
    source = redis_factory({"rename-command": 'SYNC ""'})
    with (
        pytest.raises(UnsupportedError, match=r"does not allow SYNC.*--mode bgsave"),
        replication_snapshot(open_client(endpoint(source))),
    ):
        pass


def test_stream_cut_short_is_an_integrity_error(redis_factory: Factory) -> None:
    # diskless only: a disk-based sync sends the finished file at once, too fast to cut
    source = redis_factory(DISKLESS)
    admin = source.client()
    admin.mset({f"k{i}": "x" * 100 for i in range(2000)})
    admin.config_set("rdb-key-save-delay", 500)  # ~1 s save: the stream is still running
    with (
        pytest.raises(TransientError, match="ended early"),
        replication_snapshot(open_client(endpoint(source)), chunk_size=1024) as stream,
    ):
        for n, _ in enumerate(stream):
            if n == 0:
                assert admin.client_kill_filter(_type="replica") == 1
