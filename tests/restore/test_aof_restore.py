"""AOF backups restored by both strategies, proven key for key against their source."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.backup import backup
from flows.restore import restore
from redis_dr.config import build_request
from redis_dr.manifest import BackupKind, Manifest
from redis_dr.restore.request import build_restore_request
from redis_dr.sandbox.redis_server import RedisServer
from tests.fixtures.targets import TargetServer
from tests.integration.datasets import Dataset, assert_holds, fill_every_type, read_dataset

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]
Factory = Callable[..., TargetServer]


@pytest.fixture
def aof_backup(local_target_factory: Factory, tmp_path: Path) -> tuple[Dataset, str, Manifest]:
    """An appendonly source with every type, written after its AOF base (so the incr file holds
    commands too), and its AOF backup in a file location."""
    source = local_target_factory({"appendonly": "yes", "aof-use-rdb-preamble": "yes"})
    client = source.client()
    fill_every_type(client)
    client.bgrewriteaof()  # the keys so far go into an RDB base ...
    deadline = time.monotonic() + 60
    while any(client.info("persistence")[f] for f in ("aof_rewrite_in_progress", "aof_rewrite_scheduled")):
        assert time.monotonic() < deadline, "the AOF rewrite did not finish"
        time.sleep(0.02)
    client.set("after-the-base", "in the incr file", ex=7200)  # ... and these into the incr file
    client.delete("tags")
    storage = f"file://{tmp_path / 'backups'}"
    manifest = backup(build_request(instance="sessions", storage=[storage], kind="aof",
                                    target=source.platform.target))  # fmt: skip
    assert manifest.kind is BackupKind.AOF
    return read_dataset(client), storage, manifest


@pytest.mark.parametrize("platform", ["local", "docker"])
def test_an_aof_backup_by_file_into_an_appendonly_target(
    aof_backup: tuple[Dataset, str, Manifest], platform: str, request: pytest.FixtureRequest
) -> None:
    expected, storage, manifest = aof_backup
    target_factory: Factory = request.getfixturevalue(f"{platform}_target_factory")
    target = target_factory({"appendonly": "yes"})
    target.client().set("old", "x")

    outcome = restore(build_restore_request(instance="sessions", storage=storage, target=target.platform.target,
                                            backup=manifest.id), approved=True)  # fmt: skip

    assert_holds(expected, target.client())
    assert target.client().info("persistence")["aof_enabled"] == 1
    assert not [f for f in outcome.verification.findings if f.result.value == "fail"]


def test_an_aof_backup_by_replay_into_a_live_server(
    aof_backup: tuple[Dataset, str, Manifest], redis_factory: Callable[..., RedisServer]
) -> None:
    expected, storage, manifest = aof_backup
    target = redis_factory()

    outcome = restore(build_restore_request(instance="sessions", storage=storage, redis_url=target.url,
                                            backup=manifest.id, checkpoint=False), approved=True)  # fmt: skip

    assert outcome.strategy == "replay"
    assert_holds(expected, target.client())


def test_a_backup_replayed_into_a_container_named_as_the_target(
    aof_backup: tuple[Dataset, str, Manifest], docker_target_factory: Factory
) -> None:
    expected, storage, manifest = aof_backup
    target = docker_target_factory()
    pid = target.client().info("server")["process_id"]

    outcome = restore(build_restore_request(instance="sessions", storage=storage, target=target.platform.target,
                                            strategy="replay", backup=manifest.id), approved=True)  # fmt: skip

    assert outcome.strategy == "replay" and outcome.checkpoint_id is not None
    assert_holds(expected, target.client())
    assert target.client().info("server")["process_id"] == pid  # the container was not restarted
