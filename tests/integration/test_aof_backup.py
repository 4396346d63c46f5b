"""AOF backups of real targets: a busy server copied consistently, its setting always put back."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.artifacts import Artifact

from redis_dr.aof import REWRITE_SETTING
from redis_dr.backup import StoredSnapshot, commit_backup, store_snapshot
from redis_dr.catalog import Catalog
from redis_dr.config import BackupRequest, build_request
from redis_dr.errors import StorageFullError, UnsupportedError
from redis_dr.fetch import read_file
from redis_dr.manifest import BackupKind, Manifest
from redis_dr.platforms.base import Platform
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage
from tests.fixtures.targets import TargetServer
from tests.integration.datasets import Dataset, dataset, read_dataset

pytestmark = pytest.mark.integration

Factory = Callable[..., TargetServer]
#: appendfsync always: a write the server acknowledged is in the file (everysec may postpone it).
AOF_CONFIG = {"appendonly": "yes", "appendfsync": "always"}
PERCENTAGE = "77"  # not Redis's default, so that putting it back is seen


class Writer(threading.Thread):
    """Writes `w:<n>` keys into db 0 in order, in pipelines of 50; `acked` counts acknowledged ones."""

    def __init__(self, target: TargetServer) -> None:
        super().__init__(daemon=True)
        self.client = target.client()
        self.acked = 0
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                pipe = self.client.pipeline(transaction=False)
                for n in range(self.acked, self.acked + 50):
                    pipe.set(written_key(n), written_value(n))
                pipe.execute()
                self.acked += 50
        except BaseException as exc:  # reported by the test
            self.error = exc

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < count:
            assert self.error is None and time.monotonic() < deadline, self.error
            time.sleep(0.01)

    def __enter__(self) -> Writer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.join(timeout=30)
        self.client.close()


def written_key(n: int) -> bytes:
    return b"w:%08d" % n


def written_value(n: int) -> bytes:
    return b"value-%d-" % n * 8


def prepare(target: TargetServer) -> Dataset:
    """Data of several types and TTLs in dbs 1-3, rewritten into the AOF base; return it."""
    for db in (1, 2, 3):
        pipe = target.client(db=db).pipeline(transaction=False)
        for n in range(300):
            pipe.set(f"s:{db}:{n}", os.urandom(32), ex=3600 if n % 3 == 0 else None)
        pipe.hset(f"h:{db}", mapping={f"f{n}": n for n in range(20)})
        pipe.rpush(f"l:{db}", *range(30))
        pipe.zadd(f"z:{db}", {f"m{n}": n for n in range(20)})
        pipe.xadd(f"x:{db}", {"a": "1"})
        pipe.execute()
    client = target.client()
    client.bgrewriteaof()  # a base with data, then an incr file
    wait_until(lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0, "the rewrite to end")
    client.config_set(REWRITE_SETTING, PERCENTAGE)
    return read_dataset(client)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def percentage(target: TargetServer) -> str:
    [value] = target.client().config_get(REWRITE_SETTING).values()
    return value.decode() if isinstance(value, bytes) else str(value)


def aof_request(storage: str, target: str, **fields: object) -> BackupRequest:
    return build_request(instance="sessions", storage=storage, kind="aof", target=target, **fields)


def store_aof(platform: Platform, storage_url: str, **fields: object) -> tuple[Manifest, StoredSnapshot]:
    """The AOF backup by the core functions, endpoint from the platform: stored and committed."""
    request = aof_request(storage_url, platform.target, **fields)
    endpoint = platform.endpoint()
    assert endpoint is not None
    storage = open_storage(storage_url)
    try:
        reservation = Catalog(storage, "sessions").reserve(datetime.now(UTC))
        snapshot = store_snapshot(request, endpoint, storage, reservation, platform)
        return commit_backup(request, storage, snapshot), snapshot
    finally:
        storage.close()


def load_copy(manifest: Manifest, storage_url: str, data_dir: Path) -> RedisServer:
    """A fresh appendonly redis-server started on the backup's AOF directory."""
    directory = data_dir / "appendonlydir"
    directory.mkdir(parents=True)
    storage = open_storage(storage_url)
    try:
        for stored in manifest.files:
            assert stored.original_name is not None
            with (directory / stored.original_name).open("xb") as out:
                for chunk in read_file(storage, manifest, stored, []):
                    out.write(chunk)
    finally:
        storage.close()
    return RedisServer({"appendonly": "yes"}, data_dir=data_dir).start()


def assert_consistent_copy(
    manifest: Manifest, loaded: RedisServer, static: Dataset, acked_before: int
) -> int:
    """The copy holds the static data exactly and a gap-free prefix of the writer's keys, at least
    every key acknowledged before the backup began and no more than INFO counted at the cut."""
    client = loaded.client()
    written = dataset(client, 0)
    count = len(written)
    assert written.keys() == {written_key(n) for n in range(count)}, "the copy's writes have a gap"
    assert all(written[written_key(n)][1] == written_value(n) for n in range(count))
    assert count >= acked_before
    assert count <= manifest.source.keyspace[0].key_count  # INFO at the cut counted at least these
    for db, keys in static.items():
        assert dataset(client, db) == keys, f"db{db} differs"
    return count


@pytest.fixture
def busy_aof_target(local_target_factory: Factory) -> Iterator[tuple[TargetServer, Dataset]]:
    target = local_target_factory(AOF_CONFIG)
    yield target, prepare(target)


def test_aof_backup_of_a_busy_local_target(
    busy_aof_target: tuple[TargetServer, Dataset], tmp_path: Path, prefect_harness: None
) -> None:
    from flows.backup import backup

    target, static = busy_aof_target
    storage = f"file://{tmp_path / 'store'}"
    with Writer(target) as writer:
        writer.wait_for(2000)
        acked_before = writer.acked
        state = backup(aof_request(storage, target.platform.target), return_state=True)
        manifest = state.result()
        writer.wait_for(writer.acked + 100)  # still writing after the backup: nothing was paused
    assert writer.error is None

    assert percentage(target) == PERCENTAGE
    assert manifest.kind is BackupKind.AOF and manifest.mode == "copy"
    names = [stored.original_name for stored in manifest.files]
    assert names == ["appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof", "appendonly.aof.manifest"]
    assert [stored.name for stored in manifest.files] == [f"{name}.zst" for name in names]
    assert manifest.source.rdb_version == 10  # the base is an RDB preamble (Redis 7.0)
    table = str(getattr(Artifact.get("backup-sessions"), "data", ""))
    assert manifest.id in table and all(str(name) in table for name in names)

    loaded = load_copy(manifest, storage, tmp_path / "loaded")
    try:
        count = assert_consistent_copy(manifest, loaded, static, acked_before)
        assert count > 0
    finally:
        loaded.stop()


def test_an_idle_server_is_cut_on_a_command_boundary(local_target_factory: Factory, tmp_path: Path) -> None:
    target = local_target_factory(AOF_CONFIG)
    static = prepare(target)
    target.client().set("after-the-rewrite", "in the incr file")
    storage = f"file://{tmp_path / 'store'}"

    manifest, snapshot = store_aof(target.platform, storage, compression="none")

    assert snapshot.aof_on_boundary is True
    loaded = load_copy(manifest, storage, tmp_path / "loaded")
    try:
        assert loaded.client().get("after-the-rewrite") == b"in the incr file"
        for db, keys in static.items():
            assert dataset(loaded.client(), db) == keys
        assert "AOF loaded anyway" not in loaded.log()  # no command cut in half at the end
    finally:
        loaded.stop()


def test_the_manifest_copied_lists_no_history_file(local_target_factory: Factory, tmp_path: Path) -> None:
    """With aof-disable-auto-gc the old base stays as a history line; it is neither copied nor listed."""
    target = local_target_factory({**AOF_CONFIG, "aof-disable-auto-gc": "yes"})
    prepare(target)
    listed = target.platform.read_file("appendonlydir/appendonly.aof.manifest")
    assert b"type h" in b"".join(listed)
    storage = f"file://{tmp_path / 'store'}"

    manifest, _ = store_aof(target.platform, storage, compression="none")

    copied = (tmp_path / "store" / "sessions" / manifest.id / "appendonly.aof.manifest").read_bytes()
    assert b"type h" not in copied
    assert copied.count(b"\n") == len(manifest.files) - 1


def test_the_setting_is_put_back_when_storage_fills_up(
    local_target_factory: Factory, tmp_path: Path, tmpfs_factory: Callable[[str], Path]
) -> None:
    target = local_target_factory(AOF_CONFIG)
    prepare(target)
    target.client().mset({f"big:{n}": os.urandom(100_000) for n in range(30)})  # 3 MB in the incr file
    full = tmpfs_factory("1m")

    with pytest.raises(StorageFullError):
        store_aof(target.platform, f"file://{full}", compression="none")

    assert percentage(target) == PERCENTAGE


def test_the_setting_is_put_back_on_ctrl_c(local_target_factory: Factory, tmp_path: Path) -> None:
    """Interrupted while it waits for a running rewrite (made slow on purpose)."""
    target = local_target_factory(AOF_CONFIG)
    prepare(target)
    client = target.client()
    client.config_set("rdb-key-save-delay", 20_000)  # 20 ms a key: the rewrite below takes ~20 s
    client.bgrewriteaof()
    client.config_set("rdb-key-save-delay", 0)  # the running child keeps its copy
    main = threading.get_ident()

    def interrupt_once_paused() -> None:
        wait_until(lambda: percentage(target) == "0", "the backup to pause rewrites")
        signal.pthread_kill(main, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_paused, daemon=True)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        store_aof(target.platform, f"file://{tmp_path / 'store'}")
    interrupter.join(timeout=30)

    assert client.info("persistence")["aof_rewrite_in_progress"] == 1  # interrupted while it waited
    assert percentage(target) == PERCENTAGE


def test_appendonly_off_is_refused_in_one_line(local_target_factory: Factory, tmp_path: Path) -> None:
    target = local_target_factory()
    target.client().config_set(REWRITE_SETTING, PERCENTAGE)

    with pytest.raises(UnsupportedError) as refused:
        store_aof(target.platform, f"file://{tmp_path / 'store'}")

    message = str(refused.value)
    assert "appendonly no" in message and "use kind rdb" in message and "\n" not in message
    assert percentage(target) == PERCENTAGE


def test_aof_backup_of_a_busy_docker_target(docker_target_factory: Factory, tmp_path: Path) -> None:
    target = docker_target_factory(AOF_CONFIG)
    static = prepare(target)
    storage = f"file://{tmp_path / 'store'}"
    with Writer(target) as writer:
        writer.wait_for(2000)
        acked_before = writer.acked
        manifest, _ = store_aof(target.platform, storage)
    assert writer.error is None

    assert percentage(target) == PERCENTAGE
    assert [stored.original_name for stored in manifest.files] == [
        "appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof", "appendonly.aof.manifest"
    ]  # fmt: skip
    loaded = load_copy(manifest, storage, tmp_path / "loaded")
    try:
        assert assert_consistent_copy(manifest, loaded, static, acked_before) > 0
    finally:
        loaded.stop()


def test_an_aof_backup_restores_into_an_appendonly_target(
    local_target_factory: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str], prefect_harness: None
) -> None:
    """`redis-dr backup --kind aof`, then `redis-dr restore` places the AOF directory; it survives a restart."""
    from tests.integration.cli import run_cli

    source = local_target_factory(AOF_CONFIG)
    static = prepare(source)
    source.client().set("in-the-incr-file", "yes")
    expected = read_dataset(source.client())
    target = local_target_factory(AOF_CONFIG)
    target.client().set("old", "data")
    base = ["--storage", f"file://{tmp_path / 'store'}", "--instance", "sessions"]

    code, out, err = run_cli(capsys, "backup", "--kind", "aof", "--target", source.platform.target, *base)
    assert code == 0, err
    assert "appendonly.aof.manifest" in err
    code, _, err = run_cli(
        capsys, "restore", *base, "--backup", out.strip(), "--target", target.platform.target, "--yes",
        "--no-checkpoint",
    )  # fmt: skip
    assert code == 0, err

    client = target.client()
    assert read_dataset(client) == expected and static.keys() <= expected.keys()
    assert client.info("persistence")["aof_enabled"] == 1
    target.platform.stop(30)
    target.platform.start(30)
    wait_until(lambda: _answers(target), "the target to load again")
    assert read_dataset(target.client()) == expected


def _answers(target: TargetServer) -> bool:
    try:
        return bool(target.client().ping())
    except Exception:
        return False
