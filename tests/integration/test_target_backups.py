"""Backups that reach the server's files through its target: BGSAVE of a container, and the
address taken from the target when no Redis URL is given."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from redis_dr.backup import commit_backup, store_snapshot
from redis_dr.catalog import Catalog
from redis_dr.config import build_request
from redis_dr.fetch import fetch_to_file
from redis_dr.manifest import Manifest
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage
from tests.fixtures.targets import TargetServer
from tests.integration.datasets import assert_same_data, check_rdb, start_from_rdb
from tests.redis.helpers import populate

pytestmark = pytest.mark.integration

Factory = Callable[..., TargetServer]


def bgsave_backup(target: TargetServer, storage_url: str) -> Manifest:
    """A bgsave-mode backup of `target`, its address and files from its platform."""
    request = build_request(instance="cache", storage=storage_url, mode="bgsave", target=target.platform.target)
    endpoint = target.platform.endpoint()
    assert endpoint is not None
    storage = open_storage(storage_url)
    try:
        reservation = Catalog(storage, "cache").reserve(datetime.now(UTC))
        snapshot = store_snapshot(request, endpoint, storage, reservation, target.platform)
        return commit_backup(request, storage, snapshot)
    finally:
        storage.close()


def restored_from(manifest: Manifest, storage_url: str, tmp_path: Path) -> RedisServer:
    storage = open_storage(storage_url)
    try:
        rdb = fetch_to_file(storage, manifest, tmp_path / "fetched.rdb", [])
    finally:
        storage.close()
    check_rdb(rdb)
    return start_from_rdb(rdb, tmp_path / "restored")


@pytest.mark.parametrize("password", [None, "pw-from-the-config"])
def test_bgsave_backup_of_a_docker_target(
    docker_target_factory: Factory, tmp_path: Path, password: str | None
) -> None:
    target = docker_target_factory(password=password)
    populate(target)  # type: ignore[arg-type]  # the same client(db=...) shape
    storage = f"file://{tmp_path / 'store'}"

    manifest = bgsave_backup(target, storage)

    assert manifest.mode == "bgsave"
    assert manifest.source.total_keys == 506
    restored = restored_from(manifest, storage, tmp_path)
    try:
        assert assert_same_data(target.client(), restored.client()) == 506
    finally:
        restored.stop()


def test_bgsave_through_a_local_target_reads_its_own_dump(local_target_factory: Factory, tmp_path: Path) -> None:
    """The dump is the one the config names, read through the platform (no --dump-path)."""
    target = local_target_factory({"dbfilename": "cache.rdb"})
    target.client().mset({f"k{n}": n for n in range(100)})
    storage = f"file://{tmp_path / 'store'}"

    manifest = bgsave_backup(target, storage)

    assert manifest.source.rdb_keyspace is not None and manifest.source.rdb_keyspace[0].key_count == 100
    restored = restored_from(manifest, storage, tmp_path)
    try:
        assert assert_same_data(target.client(), restored.client()) == 100
    finally:
        restored.stop()


def test_a_dbfilename_changed_at_runtime_is_refused(local_target_factory: Factory, tmp_path: Path) -> None:
    """Its save went to another file than the config says: backing up the config's would be stale."""
    from redis_dr.errors import ConfigError

    target = local_target_factory({"enable-protected-configs": "local"})
    target.client().config_set("dbfilename", "elsewhere.rdb")
    with pytest.raises(ConfigError, match="saves to elsewhere.rdb but the config"):
        bgsave_backup(target, f"file://{tmp_path / 'store'}")
