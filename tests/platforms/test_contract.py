"""One contract suite, run against every platform adapter on a real server.

Everything goes through the Platform contract and a Redis client: the suite never
reaches into a data directory by itself, so it runs unchanged against a container.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from redis_dr.errors import ConfigError, IntegrityError, NotFoundError, RedisDRError
from redis_dr.platforms.base import (
    WORK_DIR,
    Platform,
    ServerState,
    aside_dir,
    staging_dir,
)
from redis_dr.sandbox.redis_server import RedisServer
from tests.fixtures.local_targets import wait_for_ping
from tests.fixtures.targets import TargetServer

pytestmark = pytest.mark.integration
Factory = Callable[..., TargetServer]
TIMEOUT = 30.0
TAG = "t20261125T000000Z"


def factory_of(request: pytest.FixtureRequest) -> Factory:
    try:
        factory: Factory = request.getfixturevalue(f"{request.param}_target_factory")
    except pytest.FixtureLookupError:
        pytest.skip(f"no {request.param}_target_factory fixture yet")
    return factory


@pytest.fixture(params=["local", "docker", "docker_archive"])
def target_factory(request: pytest.FixtureRequest) -> Factory:
    """Every platform, a Docker target both ways: files on the volume's host path and through
    the engine's archive API."""
    return factory_of(request)


@pytest.fixture(params=["local", "docker"])
def lifecycle_factory(request: pytest.FixtureRequest) -> Factory:
    """For tests whose point is not the files: the archive way would only repeat them."""
    return factory_of(request)


def pattern(size: int, seed: int = 0) -> bytes:
    block = bytes((i * 31 + seed) % 251 for i in range(4099))
    return (block * (size // len(block) + 1))[:size]


def chunked(data: bytes, size: int = 1024 * 1024 + 7) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read_all(platform: Platform, name: str) -> bytes:
    return b"".join(platform.read_file(name))


def stage(platform: Platform, name: str, data: bytes, tag: str = TAG) -> None:
    platform.stage_file(tag, name, chunked(data), len(data))


def tree(platform: Platform, name: str = "") -> dict[str, bytes | None]:
    """Every entry of the data directory but ours: files with their bytes, directories as None."""
    found: dict[str, bytes | None] = {}
    for entry in platform.list_dir(name):
        if entry.name == WORK_DIR:
            continue
        if entry.is_dir:
            found[entry.name] = None
            found.update(tree(platform, entry.name))
        else:
            found[entry.name] = read_all(platform, entry.name)
    return found


def wait_state(platform: Platform, state: ServerState, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while platform.state() is not state:
        assert time.monotonic() < deadline, f"the server did not become {state} in {timeout:.0f}s"
        time.sleep(0.02)


def stays_stopped(platform: Platform, seconds: float = 1.5) -> bool:
    """Watch the server for `seconds`: nothing (a restart policy, a supervisor) brings it back."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if platform.state() is ServerState.RUNNING:
            return False
        time.sleep(0.05)
    return True


def rdb_from_another_server(redis_factory: Callable[..., RedisServer]) -> bytes:
    """An RDB written by a separate redis-server: keys in db 0 and db 3, one with a TTL."""
    source = redis_factory()
    client = source.client()
    client.set("restored:plain", b"value-1")
    client.hset("restored:hash", mapping={"field": "v"})
    client.set("restored:ttl", b"expiring", ex=3600)
    client.select(3)
    client.rpush("restored:list", b"a", b"b")
    client.save()
    return (source.data_dir / "dump.rdb").read_bytes()


@pytest.fixture
def source_rdb(redis_factory: Callable[..., RedisServer]) -> bytes:
    return rdb_from_another_server(redis_factory)


# --- lifecycle ------------------------------------------------------------------------------


def test_state_stop_start_kill(lifecycle_factory: Factory) -> None:
    target = lifecycle_factory()
    platform = target.platform
    assert platform.state() is ServerState.RUNNING
    version = target.client().info("server")["redis_version"]
    assert platform.server_binary_version() in (version, None)
    assert platform.layout().dir.startswith("/")
    platform.stop(TIMEOUT)
    assert platform.state() is ServerState.STOPPED
    with pytest.raises(redis.ConnectionError):
        target.client(socket_connect_timeout=2).ping()
    platform.stop(TIMEOUT)  # stopped already: nothing to do
    platform.start(TIMEOUT)
    assert platform.state() is ServerState.RUNNING
    wait_for_ping(target)
    platform.start(TIMEOUT)  # running already: nothing to do
    platform.kill()
    assert platform.state() is ServerState.STOPPED
    platform.kill()
    platform.start(TIMEOUT)
    wait_for_ping(target)
    assert target.client().ping()


def test_stop_does_not_save_and_the_server_stays_down(lifecycle_factory: Factory) -> None:
    target = lifecycle_factory({"save": "3600 1"})  # a normal shutdown would save
    platform, client = target.platform, target.client()
    client.set("saved", b"1")
    client.save()
    saved = read_all(platform, "dump.rdb")
    client.set("after-save", b"2")
    platform.stop(TIMEOUT)
    assert read_all(platform, "dump.rdb") == saved
    assert stays_stopped(platform)
    platform.start(TIMEOUT)
    wait_for_ping(target)
    assert target.client().keys("*") == [b"saved"]


def test_layout_and_owner(target_factory: Factory) -> None:
    target = target_factory({"appendonly": "yes", "dbfilename": "snapshot.rdb"})
    layout = target.platform.layout()
    assert (layout.dbfilename, layout.appendonly, layout.save_points) == ("snapshot.rdb", True, False)
    assert target.client().config_get("dir")["dir"] in (layout.dir, layout.dir.encode())
    made_by_server = target.platform.stat(layout.appenddirname)
    assert made_by_server is not None and (made_by_server.uid, made_by_server.gid) == target.platform.owner()
    free = target.platform.free_bytes()
    assert free is None or free > 0


# --- files ------------------------------------------------------------------------------------


def test_stage_file_owner_mode_and_content(target_factory: Factory) -> None:
    platform = target_factory().platform
    big, small = pattern(5 * 1024 * 1024 + 3), b"manifest\n"
    stage(platform, "dump.rdb", big)
    stage(platform, "appendonlydir/appendonly.aof.manifest", small)
    uid, gid = platform.owner()
    staged = f"{staging_dir(TAG)}/dump.rdb"
    info = platform.stat(staged)
    assert info is not None and (info.size, info.uid, info.gid, info.mode, info.is_dir) == (len(big), uid, gid, 0o600, False)
    for directory in (WORK_DIR, staging_dir(TAG), f"{staging_dir(TAG)}/appendonlydir"):
        made = platform.stat(directory)
        assert made is not None and (made.is_dir, made.mode, made.uid, made.gid) == (True, 0o700, uid, gid), directory
    assert read_all(platform, staged) == big
    assert read_all(platform, f"{staging_dir(TAG)}/appendonlydir/appendonly.aof.manifest") == small
    assert all(len(chunk) <= 16 * 1024 * 1024 for chunk in platform.read_file(staged))
    assert platform.stat("dump.rdb") is None  # nothing live was touched
    assert platform.state() is ServerState.RUNNING


def test_stage_file_with_the_wrong_size_fails(target_factory: Factory) -> None:
    platform = target_factory().platform
    with pytest.raises(IntegrityError):
        platform.stage_file(TAG, "dump.rdb", chunked(b"12345"), 6)
    assert platform.stat(f"{staging_dir(TAG)}/dump.rdb") is None


def test_swap_in_moves_previous_files_aside_and_swap_back_restores_them(target_factory: Factory) -> None:
    target = target_factory({"appendonly": "yes"})
    platform = target.platform
    target.client().set("old", b"1")
    target.client().save()
    new_rdb, new_base = pattern(3000, 1), pattern(2000, 2)
    stage(platform, "dump.rdb", new_rdb)
    stage(platform, "appendonlydir/appendonly.aof.1.base.rdb", new_base)
    stage(platform, "appendonlydir/appendonly.aof.manifest", b"file appendonly.aof.1.base.rdb seq 1 type b\n")
    platform.stop(TIMEOUT)
    before = tree(platform)
    assert "dump.rdb" in before and "appendonlydir" in before

    swap = platform.swap_in(TAG, ["dump.rdb", "appendonlydir"])
    assert (swap.moved_aside, swap.placed) == (["dump.rdb", "appendonlydir"], ["dump.rdb", "appendonlydir"])
    assert read_all(platform, "dump.rdb") == new_rdb
    assert read_all(platform, "appendonlydir/appendonly.aof.1.base.rdb") == new_base
    assert read_all(platform, f"{aside_dir(TAG)}/dump.rdb") == before["dump.rdb"]
    aside = tree(platform, f"{aside_dir(TAG)}/appendonlydir")
    assert {name.removeprefix(f"{aside_dir(TAG)}/"): data for name, data in aside.items()} == {
        name: data for name, data in before.items() if name.startswith("appendonlydir/")
    }
    assert platform.stat(f"{staging_dir(TAG)}/dump.rdb") is None  # moved, not copied

    platform.swap_back(swap)
    assert tree(platform) == before
    assert read_all(platform, f"{staging_dir(TAG)}/dump.rdb") == new_rdb  # back in staging
    assert platform.stat(aside_dir(TAG)) is None

    platform.discard_staging(TAG)
    assert platform.stat(staging_dir(TAG)) is None
    assert tree(platform) == before


def test_a_name_not_staged_is_only_moved_aside(target_factory: Factory) -> None:
    target = target_factory()
    platform = target.platform
    target.client().set("k", b"v")
    target.client().save()
    platform.stop(TIMEOUT)
    before = tree(platform)
    swap = platform.swap_in(TAG, ["dump.rdb", "appendonlydir"])  # neither staged; no appendonlydir
    assert (swap.moved_aside, swap.placed) == (["dump.rdb"], [])
    assert platform.stat("dump.rdb") is None
    platform.swap_back(swap)
    assert tree(platform) == before


def test_discard_staging_removes_only_its_own_staging(target_factory: Factory) -> None:
    platform = target_factory().platform
    stage(platform, "dump.rdb", b"one")
    stage(platform, "dump.rdb", b"two", tag="other-tag")
    platform.discard_staging(TAG)
    assert platform.stat(staging_dir(TAG)) is None
    assert read_all(platform, f"{staging_dir('other-tag')}/dump.rdb") == b"two"
    platform.discard_staging("never-staged")  # nothing there: fine


def test_read_file_of_a_growing_file(target_factory: Factory) -> None:
    target = target_factory({"appendonly": "yes", "appendfsync": "always"})
    platform, client = target.platform, target.client()
    manifest = read_all(platform, "appendonlydir/appendonly.aof.manifest").decode()
    incr = next(line.split()[1] for line in manifest.splitlines() if line.endswith("type i"))
    client.set("first", b"x" * 1000)
    name = f"appendonlydir/{incr}"
    size_before = platform.stat(name).size  # type: ignore[union-attr]
    chunks = platform.read_file(name)
    for i in range(200):
        client.set(f"grow:{i}", b"y" * 1000)
    data = b"".join(chunks)
    grown = read_all(platform, name)
    assert len(grown) > size_before + 200_000
    assert len(data) >= size_before
    assert grown.startswith(data)


def test_stat_and_list_dir(target_factory: Factory) -> None:
    target = target_factory({"appendonly": "yes"})
    platform = target.platform
    target.client().save()
    info = platform.stat("dump.rdb")
    assert info is not None and not info.is_dir and info.size == len(read_all(platform, "dump.rdb"))
    assert platform.stat("appendonlydir").is_dir  # type: ignore[union-attr]
    assert platform.stat("no-such-file") is None
    names = [entry.name for entry in platform.list_dir("appendonlydir")]
    assert names == sorted(names) and "appendonlydir/appendonly.aof.manifest" in names
    assert {"dump.rdb", "appendonlydir"} <= {entry.name for entry in platform.list_dir("")}
    with pytest.raises(NotFoundError):
        platform.read_file("no-such-file")


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "a/../../b", "./dump.rdb", "a//b", ""])
def test_names_outside_the_data_directory_are_refused(lifecycle_factory: Factory, name: str) -> None:
    platform = lifecycle_factory().platform
    calls: list[Callable[[], object]] = [
        lambda: platform.stat(name),
        lambda: platform.read_file(name),
        lambda: platform.stage_file(TAG, name, [b"x"], 1),
        lambda: platform.swap_in(TAG, [name]),
    ]
    if name:
        calls.append(lambda: platform.list_dir(name))
    for call in calls:
        with pytest.raises(ConfigError):
            call()
    with pytest.raises(ConfigError):
        platform.stage_file("../escape", "dump.rdb", [b"x"], 1)


# --- a restore and a rollback, through the contract only ------------------------------------


def test_restore_through_the_contract(target_factory: Factory, source_rdb: bytes) -> None:
    target = target_factory()
    platform = target.platform
    target.client().set("before-restore", b"gone afterwards")
    stage(platform, "dump.rdb", source_rdb)
    platform.stop(TIMEOUT)
    swap = platform.swap_in(TAG, ["dump.rdb"])
    platform.start(TIMEOUT)
    wait_for_ping(target)
    client = target.client()
    assert sorted(client.keys("*")) == [b"restored:hash", b"restored:plain", b"restored:ttl"]
    assert client.get("restored:plain") == b"value-1"
    assert 3500 < client.ttl("restored:ttl") <= 3600
    client.select(3)
    assert client.lrange("restored:list", 0, -1) == [b"a", b"b"]
    assert swap.moved_aside == []  # the target had saved nothing yet
    platform.discard_staging(TAG)


def test_rollback_after_a_file_the_server_cannot_load(target_factory: Factory, source_rdb: bytes) -> None:
    target = target_factory()
    platform = target.platform
    target.client().set("old-key", b"old value")
    target.client().save()
    old_rdb = read_all(platform, "dump.rdb")
    stage(platform, "dump.rdb", source_rdb[: len(source_rdb) // 2])  # truncated
    platform.stop(TIMEOUT)
    swap = platform.swap_in(TAG, ["dump.rdb"])
    with contextlib.suppress(RedisDRError):  # either start sees it die, or it dies just after
        platform.start(TIMEOUT)
    wait_state(platform, ServerState.STOPPED)
    reason = platform.exit_reason()
    assert reason is not None and ("Short read" in reason or "RDB" in reason), reason
    platform.swap_back(swap)
    assert read_all(platform, "dump.rdb") == old_rdb
    platform.start(TIMEOUT)
    wait_for_ping(target)
    assert target.client().keys("*") == [b"old-key"]
    platform.discard_staging(TAG)

