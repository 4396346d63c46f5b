"""Restores by file into a real local redis-server, through the restore flow.

Each test proves the restored server holds the backup key for key, or that a
refused or failed restore left the target exactly as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.backup import backup
from flows.restore import restore
from redis_dr.config import build_request
from redis_dr.errors import RefusedError
from redis_dr.manifest import Manifest
from redis_dr.platforms.base import WORK_DIR, ServerState, aside_dir
from redis_dr.restore.file_restore import RestoreFailedError
from redis_dr.restore.request import build_restore_request
from redis_dr.sandbox.redis_server import RedisServer
from tests.fixtures.local_targets import wait_for_ping
from tests.fixtures.targets import TargetServer
from tests.integration.datasets import assert_holds, fill_every_type, read_dataset

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]
Factory = Callable[..., TargetServer]
TIMEOUT = 30.0


def back_up(server: RedisServer, storage: str) -> Manifest:
    """A backup of `server` committed in `storage` by the backup flow."""
    return backup(build_request(instance="sessions", redis_url=server.url, storage=[storage]))


def data_dir_state(target: TargetServer, directory: str = "") -> dict[str, str]:
    """Every file of the target's data directory with its sha256 (our work dir included),
    read through the platform (a container's volume is not on this host's file system)."""
    state: dict[str, str] = {}
    for entry in target.platform.list_dir(directory):
        if entry.is_dir:
            state.update(data_dir_state(target, entry.name))
        else:
            digest = hashlib.sha256(b"".join(target.platform.read_file(entry.name)))
            state[entry.name] = digest.hexdigest()
    return state


@pytest.fixture(params=["local", "docker"])
def target_factory(request: pytest.FixtureRequest) -> Factory:
    """Targets of each platform (the docker ones skip themselves without an engine)."""
    factory: Factory = request.getfixturevalue(f"{request.param}_target_factory")
    return factory


@pytest.fixture
def source(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    server = redis_factory()
    fill_every_type(server.client())
    return server


def test_restore_by_file_brings_back_every_key_and_keeps_the_previous_files(
    source: RedisServer, target_factory: Factory, tmp_path: Path
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    manifest = back_up(source, storage)
    target = target_factory({"save": "3600 1"})
    target.client().set("old-data", "before the restore")
    target.client().save()
    old_dump = data_dir_state(target)["dump.rdb"]

    outcome = restore(
        build_restore_request(instance="sessions", storage=storage, target=target.platform.target), approved=True
    )

    assert outcome.backup_id == manifest.id
    assert [f for f in outcome.verification.findings if f.result.value != "pass"] == []
    assert_holds(read_dataset(source.client()), target.client())
    assert outcome.checkpoint_id is not None  # the old data was backed up first
    assert outcome.aside is not None
    after = data_dir_state(target)
    assert after[f"{aside_dir(outcome.tag)}/dump.rdb"] == old_dump
    assert not any(name.startswith(f"{WORK_DIR}/staging") for name in after)
    placed = target.platform.stat("dump.rdb")
    assert placed is not None and (placed.uid, placed.gid) == target.platform.owner()  # e.g. 999 in a container
    assert {"fetch", "stop", "place", "load", "verify"} <= set(outcome.phases)


def test_an_appendonly_target_ends_with_the_restored_data_and_aof_on_after_a_restart(
    source: RedisServer, target_factory: Factory, tmp_path: Path
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    back_up(source, storage)
    target = target_factory({"appendonly": "yes"})
    target.client().set("old-data", "x")

    restore(build_restore_request(instance="sessions", storage=storage, target=target.platform.target), approved=True)

    expected = read_dataset(source.client())
    assert_holds(expected, target.client())
    assert target.client().info("persistence")["aof_enabled"] == 1
    target.platform.stop(TIMEOUT)  # no save: what comes back is what the AOF holds
    target.platform.start(TIMEOUT)
    wait_for_ping(target)
    assert_holds(expected, target.client())


def test_the_old_dataset_is_never_saved_over_the_restored_file(
    source: RedisServer, target_factory: Factory, tmp_path: Path
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    back_up(source, storage)
    target = target_factory({"save": "1 1"})  # saves on shutdown and every second
    for i in range(100):
        target.client().set(f"stale:{i}", i)

    restore(build_restore_request(instance="sessions", storage=storage, target=target.platform.target,
                                  checkpoint=False), approved=True)  # fmt: skip

    target.platform.kill()  # no shutdown save either way: the file on disk is what restarts
    target.platform.start(TIMEOUT)
    wait_for_ping(target)
    assert target.client().exists("stale:0") == 0
    assert_holds(read_dataset(source.client()), target.client())


def test_a_file_the_server_cannot_load_is_rolled_back_and_the_target_runs_its_old_data(
    source: RedisServer, target_factory: Factory, tmp_path: Path
) -> None:
    source.client().save()
    rdb = bytearray((source.data_dir / "dump.rdb").read_bytes())
    rdb[-1] ^= 0xFF  # a wrong CRC64: our checks pass (we hash the file as it is), Redis refuses it
    runbook_file = tmp_path / "dump-20250101-000000.rdb"
    runbook_file.write_bytes(bytes(rdb))
    target = target_factory({"save": "3600 1"})
    target.client().set("old-data", "still here")
    target.client().save()
    before = data_dir_state(target)

    with pytest.raises(RestoreFailedError, match="rolled back: the target runs with its previous data") as caught:
        restore(build_restore_request(instance="sessions", backup=str(runbook_file),
                                      target=target.platform.target), approved=True)  # fmt: skip

    assert "checksum" in str(caught.value).lower()  # the server's own reason, from its log
    assert target.platform.state() is ServerState.RUNNING
    assert target.client().get("old-data") == b"still here"
    assert data_dir_state(target) == before  # nothing left of the attempt


def test_a_newer_rdb_version_is_refused_before_the_target_is_touched(
    source: RedisServer, target_factory: Factory, tmp_path: Path
) -> None:
    source.client().save()
    rdb = (source.data_dir / "dump.rdb").read_bytes()
    runbook_file = tmp_path / "redis-20250101-000000.rdb"
    runbook_file.write_bytes(b"REDIS0012" + rdb[9:])  # as Redis 7.4 would write it
    target = target_factory()
    target.client().set("old-data", "x")
    pid_before = target.client().info("server")["process_id"]
    before = data_dir_state(target)

    with pytest.raises(RefusedError, match=r"RDB v12 .* 7\.0\.15 reads RDB v10 at most"):
        restore(build_restore_request(instance="sessions", backup=str(runbook_file),
                                      target=target.platform.target), approved=True)  # fmt: skip

    assert target.client().info("server")["process_id"] == pid_before
    assert data_dir_state(target) == before
