"""What only the Docker adapter does, on the real engine: the contract itself is in test_contract.py.

Compose lookup, the restart policy held down by stop and put back by start (also from
another process, and after a start that fails), owners from the container's user, files
in an image with no shell, a stopped container's files, config files read out of the
container, the engine's archive semantics the adapter builds on, and one-line errors.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_dr.errors import (
    AccessDeniedError,
    ConfigError,
    NotFoundError,
    PermanentError,
    ServerFailureError,
    StorageFullError,
    TransientError,
)
from redis_dr.platforms import docker_tar
from redis_dr.platforms.base import ServerState, aside_dir, staging_dir
from redis_dr.platforms.docker import (
    POLICY_FILE,
    DockerPlatform,
    _go_time_ns,
    _unreachable,
    server_args,
)
from redis_dr.sandbox.ports import free_port
from tests.fixtures.docker_targets import CONFIG_PATH, put_file, wait_until_ready
from tests.fixtures.targets import TargetServer

pytestmark = pytest.mark.integration
Factory = Callable[..., TargetServer]
TIMEOUT = 30.0
TAG = "t-docker"


def container_of(target: TargetServer, engine: Any) -> Any:
    platform = target.platform
    assert isinstance(platform, DockerPlatform)
    return engine.containers.get(platform.container)


def restart_policy(container: Any) -> str:
    container.reload()
    return str(container.attrs["HostConfig"]["RestartPolicy"]["Name"])


def read_all(platform: DockerPlatform | Any, name: str) -> bytes:
    return b"".join(platform.read_file(name))


def saved_rdb(target: TargetServer, keys: int) -> bytes:
    """The target's dump.rdb after writing `keys` keys and SAVE."""
    client = target.client()
    client.flushall()
    for i in range(keys):
        client.set(f"key:{i}", f"value {i}")
    client.save()
    return read_all(target.platform, "dump.rdb")


# --- compose and names ------------------------------------------------------------------------


def test_compose_service_is_found_by_its_labels(docker_target_factory: Factory, docker_engine: Any) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    target = docker_target_factory(compose=(project, "cache"))
    platform = DockerPlatform.for_compose(project, "cache", client=docker_engine)
    assert platform.container == container_of(target, docker_engine).name
    assert platform.target == f"compose://{project}/cache"
    assert platform.endpoint().port == target.port  # type: ignore[union-attr]
    with pytest.raises(NotFoundError, match=f"no container of compose service 'web' in project '{project}'"):
        DockerPlatform.for_compose(project, "web", client=docker_engine)


def test_a_compose_service_with_two_containers_is_refused_naming_them(
    docker_target_factory: Factory, docker_engine: Any
) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    first = container_of(docker_target_factory(compose=(project, "cache")), docker_engine)
    second = container_of(docker_target_factory(compose=(project, "cache")), docker_engine)
    with pytest.raises(ConfigError) as raised:
        DockerPlatform.for_compose(project, "cache", client=docker_engine)
    message = str(raised.value)
    assert "2 containers" in message and first.name in message and second.name in message
    assert "\n" not in message


def test_a_missing_container_is_one_line_naming_it(docker_engine: Any) -> None:
    platform = DockerPlatform.for_container("redis-dr-no-such-container", client=docker_engine)
    assert platform.state() is ServerState.ABSENT
    for call in (
        platform.layout,
        platform.describe,
        lambda: platform.stop(TIMEOUT),
        lambda: platform.stat("dump.rdb"),
    ):
        with pytest.raises(NotFoundError) as raised:
            call()
        assert "redis-dr-no-such-container" in str(raised.value) and "\n" not in str(raised.value)


# --- the restart policy -----------------------------------------------------------------------


def test_stop_holds_the_restart_policy_and_start_puts_it_back(
    docker_target_factory: Factory, docker_engine: Any
) -> None:
    target = docker_target_factory({"save": "3600 1"})
    platform, container = target.platform, container_of(target, docker_engine)
    target.client().set("unsaved", b"1")
    platform.stop(TIMEOUT)
    assert platform.state() is ServerState.STOPPED
    assert restart_policy(container) == "no"
    assert platform.stat("dump.rdb") is None  # SHUTDOWN NOSAVE: the dataset was not saved at the stop
    assert platform.stat(POLICY_FILE) is not None
    platform.start(TIMEOUT)
    assert restart_policy(container) == "unless-stopped"
    assert platform.stat(POLICY_FILE) is None
    wait_until_ready(target.port, None, container)


def test_a_new_process_puts_back_the_policy_a_stop_held(
    docker_target_factory: Factory, docker_engine: Any
) -> None:
    target = docker_target_factory(restart_policy="always")
    container = container_of(target, docker_engine)
    target.platform.stop(TIMEOUT)
    assert restart_policy(container) == "no"
    later = DockerPlatform.for_container(container.name, client=docker_engine)  # e.g. a rerun after a crash
    later.start(TIMEOUT)
    assert restart_policy(container) == "always"
    assert later.state() is ServerState.RUNNING


def test_the_policy_is_put_back_when_the_start_fails(
    docker_target_factory: Factory, docker_engine: Any
) -> None:
    target = docker_target_factory()
    platform, container = target.platform, container_of(target, docker_engine)
    platform.stop(TIMEOUT)
    put_file(container, "/usr/bin/redis-server", b"not a program\n", mode=0o644)  # exec now fails
    with pytest.raises(ServerFailureError, match=f"container {container.name} did not start"):
        platform.start(TIMEOUT)
    assert restart_policy(container) == "unless-stopped"
    assert platform.stat(POLICY_FILE) is None


def test_stop_of_a_stopped_container_changes_nothing(
    docker_target_factory: Factory, docker_engine: Any
) -> None:
    target = docker_target_factory()
    platform, container = target.platform, container_of(target, docker_engine)
    container.stop(timeout=10)
    platform.stop(TIMEOUT)
    assert restart_policy(container) == "unless-stopped"
    assert platform.stat(POLICY_FILE) is None


# --- owner ------------------------------------------------------------------------------------


def test_owner_from_the_user_name_the_setting_or_the_data_dir(
    docker_target_factory: Factory, docker_engine: Any
) -> None:
    by_name = docker_target_factory(user="redis")
    assert by_name.platform.owner() == (999, 999)  # looked up in the container's /etc/passwd
    name = container_of(by_name, docker_engine).name
    assert DockerPlatform.for_container(name, owner=(1001, 1001), client=docker_engine).owner() == (
        1001,
        1001,
    )
    as_root = docker_target_factory(user="")
    assert as_root.platform.owner() == (999, 999)  # the data directory's owner


def test_placed_files_get_uid_999_in_an_image_without_shell_or_chown(
    docker_target_factory: Factory, docker_engine: Any
) -> None:
    target = docker_target_factory()
    platform, container = target.platform, container_of(target, docker_engine)
    for tool in ("/bin/sh", "/usr/bin/sh", "/bin/chown", "/usr/bin/chown", "/bin/tar", "/usr/bin/tar"):
        with pytest.raises(Exception, match="Could not find the file"):
            container.get_archive(tool)
    rdb = saved_rdb(target, 50)
    target.client().flushall()
    target.client().save()
    platform.stage_file(TAG, "dump.rdb", [rdb], len(rdb))
    platform.stop(TIMEOUT)
    platform.swap_in(TAG, ["dump.rdb"])
    info = platform.stat("dump.rdb")
    assert info is not None and (info.uid, info.gid, info.mode) == (999, 999, 0o600)
    platform.start(TIMEOUT)
    wait_until_ready(target.port, None, container)
    assert target.client().dbsize() == 50


# --- files ------------------------------------------------------------------------------------


def test_a_stopped_containers_files_are_reachable(docker_target_factory: Factory, docker_engine: Any) -> None:
    target = docker_target_factory({"appendonly": "yes"})
    platform = target.platform
    rdb = saved_rdb(target, 5)
    platform.stop(TIMEOUT)
    assert platform.layout().appendonly
    assert read_all(platform, "dump.rdb") == rdb
    assert "appendonlydir/appendonly.aof.manifest" in [e.name for e in platform.list_dir("appendonlydir")]
    platform.stage_file(TAG, "dump.rdb", [b"staged"], 6)
    assert read_all(platform, f"{staging_dir(TAG)}/dump.rdb") == b"staged"
    platform.discard_staging(TAG)
    assert platform.stat(staging_dir(TAG)) is None


def test_a_failing_swap_in_puts_everything_back(
    docker_archive_target_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = docker_archive_target_factory({"appendonly": "yes"})
    platform = target.platform
    assert isinstance(platform, DockerPlatform)
    old_rdb = saved_rdb(target, 3)
    old_manifest = read_all(platform, "appendonlydir/appendonly.aof.manifest")
    platform.stage_file(TAG, "dump.rdb", [b"new rdb"], 7)
    platform.stage_file(TAG, "appendonlydir/appendonly.aof.manifest", [b"new"], 3)
    platform.stop(TIMEOUT)
    place = platform._place
    calls: list[str] = []

    def place_then_fail(name: str, *args: Any, **kwargs: Any) -> None:
        calls.append(name)
        place(name, *args, **kwargs)
        if calls == ["dump.rdb", "appendonlydir"]:
            raise TransientError("the engine went away (injected)")

    monkeypatch.setattr(platform, "_place", place_then_fail)
    with pytest.raises(TransientError, match="injected"):
        platform.swap_in(TAG, ["dump.rdb", "appendonlydir"])
    assert calls == ["dump.rdb", "appendonlydir", "appendonlydir", "dump.rdb"]  # placed, then put back
    assert read_all(platform, "dump.rdb") == old_rdb
    assert read_all(platform, "appendonlydir/appendonly.aof.manifest") == old_manifest
    assert read_all(platform, f"{staging_dir(TAG)}/dump.rdb") == b"new rdb"
    assert read_all(platform, f"{staging_dir(TAG)}/appendonlydir/appendonly.aof.manifest") == b"new"
    assert platform.stat(aside_dir(TAG)) is None


def test_swap_in_refuses_an_aside_name_left_by_an_earlier_restore(docker_target_factory: Factory) -> None:
    target = docker_target_factory()
    platform = target.platform
    saved_rdb(target, 1)
    platform.stage_file(TAG, "dump.rdb", [b"x"], 1)
    platform.stop(TIMEOUT)
    platform.swap_in(TAG, ["dump.rdb"])
    platform.stage_file(TAG, "dump.rdb", [b"y"], 1)
    with pytest.raises(PermanentError, match="already exists"):
        platform.swap_in(TAG, ["dump.rdb"])
    assert read_all(platform, "dump.rdb") == b"x"


# --- the config, read out of the container ------------------------------------------------------


def test_include_globs_and_a_symlinked_config_are_read_in_the_container(
    docker_target_factory: Factory, docker_engine: Any
) -> None:
    target = docker_target_factory(
        {"include": "/etc/redis/conf.d/*.conf"},
        files={
            "/etc/redis/conf.d/10-aof.conf": b"appendonly yes\n",
            "/etc/redis/conf.d/other.txt": b"port 1\n",
        },
    )
    platform, container = target.platform, container_of(target, docker_engine)
    assert target.client().config_get("appendonly") == {"appendonly": "yes"}
    assert platform.layout().appendonly and platform.endpoint().port == target.port  # type: ignore[union-attr]
    platform.stop(TIMEOUT)
    text = b"".join(
        DockerPlatform.for_container(container.name, client=docker_engine)._read_path(CONFIG_PATH, 1 << 20)
    )
    put_file(container, "/etc/redis/real.conf", text + b"dbfilename other.rdb\n")
    link = tarfile.TarInfo("redis.conf")
    link.type, link.linkname = tarfile.SYMTYPE, "real.conf"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(link)
    container.put_archive("/etc/redis", buffer.getvalue())
    assert (
        DockerPlatform.for_container(container.name, client=docker_engine).layout().dbfilename == "other.rdb"
    )


def test_layout_from_arguments_against_the_working_dir(docker_target_factory: Factory) -> None:
    target = docker_target_factory({"dir": ".", "dbfilename": "args.rdb"}, config_file=False)
    layout = target.platform.layout()
    assert (layout.dir, layout.dbfilename) == ("/data", "args.rdb")  # the image's WORKDIR is /data


def test_no_endpoint_without_host_networking(docker_engine: Any, docker_test_image: str) -> None:
    container = docker_engine.containers.create(
        docker_test_image, command=["redis-server", "--port", str(free_port())], network_mode="none",
        name=f"redis-dr-test-{uuid.uuid4().hex[:10]}",
    )  # fmt: skip
    try:
        platform = DockerPlatform.for_container(container.name, client=docker_engine)
        assert platform.endpoint() is None
        assert platform.state() is ServerState.STOPPED
    finally:
        container.remove(force=True)


def test_server_args_from_container_commands() -> None:
    assert server_args(["redis-server", "/etc/redis.conf", "--port", "1"]) == [
        "/etc/redis.conf",
        "--port",
        "1",
    ]
    assert server_args(["docker-entrypoint.sh", "redis-server", "--appendonly", "yes"]) == [
        "--appendonly",
        "yes",
    ]
    assert server_args(["docker-entrypoint.sh", "/usr/local/etc/redis/redis.conf"]) == [
        "/usr/local/etc/redis/redis.conf"
    ]
    assert server_args(["sh", "-c", "exec redis-server /etc/r.conf --save ''"]) == [
        "/etc/r.conf",
        "--save",
        "",
    ]
    assert server_args(["/opt/bitnami/scripts/redis/run.sh"]) is None


# --- the engine's archive semantics the adapter builds on ----------------------------------------


def test_engine_archive_semantics(docker_archive_target_factory: Factory, docker_engine: Any) -> None:
    """Pin what docker_tar.py says the engine does (a newer engine that differs fails here)."""
    target = docker_archive_target_factory()
    platform, container = target.platform, container_of(target, docker_engine)
    directory = platform.layout().dir

    def put(*headers: bytes) -> str | None:
        try:
            container.put_archive(directory, docker_tar.archive(*headers))
        except Exception as exc:
            return str(exc)
        return None

    platform.stage_file(TAG, "f", [b"old"], 3)
    staged = f"{staging_dir(TAG)}/f"
    like = docker_tar.Entry(staged, tarfile.REGTYPE, 3, 0o644, 1234, 1234, 0)
    assert put(docker_tar.hard_link("second", staged, like=like)) is None
    second = platform.stat("second")
    assert second is not None and (second.uid, second.mode) == (1234, 0o600)  # owner applied, mode not
    platform.stage_file(TAG, "f", [b"new!"], 4)  # replaces the staged name, not the linked inode
    assert read_all(platform, "second") == b"old"
    assert put(docker_tar.directory("tree/sub", mode=0o700, uid=999, gid=999)) is None
    parent = platform.stat("tree")
    assert parent is not None and (parent.uid, parent.mode) == (0, 0o755)  # missing parents: root 0755
    refusal = put(docker_tar.removal("tree"))
    assert refusal is not None and platform.stat("tree") is None  # removed, then the entry failed
    assert put(docker_tar.empty_file("second", uid=999, gid=999)) is None  # replaces what was there
    assert read_all(platform, "second") == b""


# --- errors of the engine itself ---------------------------------------------------------------


def test_an_engine_that_is_not_there_names_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(ConfigError, match="DOCKER_HOST") as raised:
        DockerPlatform.for_container("redis").layout()
    assert "\n" not in str(raised.value)
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(TransientError, match="DOCKER_HOST"):
        DockerPlatform.for_container("redis").state()


def test_permission_denied_on_the_socket_is_access_denied() -> None:
    error = _unreachable(ConnectionError(PermissionError(13, "Permission denied")), "connecting")
    assert isinstance(error, AccessDeniedError) and "docker" in str(error)


# --- a data volume that fills up ----------------------------------------------------------------


def test_a_full_volume_fails_staging_with_storage_full_and_leaves_nothing(
    docker_target_factory: Factory,
) -> None:
    target = docker_target_factory(volume_size="2m")
    platform = target.platform
    assert "through the engine's archive API (volume" in platform.describe()  # mounted only in use
    free = platform.free_bytes()
    assert free is not None and 0 < free <= 2 * 1024 * 1024  # the tmpfs, not the disk under it
    data = b"x" * (3 * 1024 * 1024)
    with pytest.raises(StorageFullError, match="no space left"):
        platform.stage_file(
            TAG, "dump.rdb", (data[i : i + 65536] for i in range(0, len(data), 65536)), len(data)
        )
    assert platform.stat(f"{staging_dir(TAG)}/dump.rdb") is None
    platform.stop(TIMEOUT)
    assert platform.free_bytes() is None  # the engine mounts that volume only while it is in use


def test_free_bytes_of_a_plain_volume(docker_target_factory: Factory, docker_engine: Any) -> None:
    target = docker_target_factory()
    volume = container_of(target, docker_engine).attrs["Mounts"][0]["Source"]
    fs = os.statvfs(volume)
    free = target.platform.free_bytes()
    assert free is not None and abs(free - fs.f_bavail * fs.f_frsize) < 256 * 1024 * 1024


# --- the data directory reached on this host ---------------------------------------------------


class CountingStream:
    """A raw archive stream that counts the bytes read from it."""

    def __init__(self, raw: Any, counted: list[int]) -> None:
        self.raw, self.counted = raw, counted

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(size)
        self.counted.append(len(data))
        return data


def count_archive_bytes(platform: DockerPlatform, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every read from the engine's archive streams from now on, in bytes."""
    counted: list[int] = []
    archive = platform._archive

    @contextlib.contextmanager
    def counting(path: str) -> Iterator[Any]:
        with archive(path) as stream:
            yield None if stream is None else CountingStream(stream, counted)

    monkeypatch.setattr(platform, "_archive", counting)
    return counted


def test_a_plain_volume_is_reached_directly_and_nothing_goes_through_the_archive_api(
    docker_target_factory: Factory, docker_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = docker_target_factory(restart_policy="no")
    platform = target.platform
    assert isinstance(platform, DockerPlatform)
    mountpoint = container_of(target, docker_engine).attrs["Mounts"][0]["Source"]
    assert f"files directly at {mountpoint} on this host (volume " in platform.describe()
    old = saved_rdb(target, 3)
    platform.stop(TIMEOUT)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the archive API was used")

    monkeypatch.setattr(platform, "_archive", refuse)
    monkeypatch.setattr(platform, "_put", refuse)
    platform.stage_file(TAG, "dump.rdb", [b"new ", b"rdb"], 7)
    staged = os.stat(f"{mountpoint}/{staging_dir(TAG)}/dump.rdb")
    assert (staged.st_uid, staged.st_gid, staged.st_mode & 0o777) == (999, 999, 0o600)
    swap = platform.swap_in(TAG, ["dump.rdb"])
    assert read_all(platform, "dump.rdb") == b"new rdb"
    assert read_all(platform, f"{aside_dir(TAG)}/dump.rdb") == old
    assert platform.work_entries() == [f"aside-{TAG}", f"staging-{TAG}"]
    platform.swap_back(swap)
    assert read_all(platform, "dump.rdb") == old
    platform.discard_staging(TAG)
    assert platform.work_entries() == []


def test_a_bind_mounted_data_directory_is_reached_directly(
    docker_target_factory: Factory, docker_engine: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 999, 999)
    target = docker_target_factory(bind=data)
    platform = target.platform
    assert f"files directly at {data} on this host (bind {data})" in platform.describe()
    rdb = saved_rdb(target, 4)
    assert (data / "dump.rdb").read_bytes() == rdb
    target.client().flushall()
    platform.stage_file(TAG, "dump.rdb", [rdb], len(rdb))
    platform.stop(TIMEOUT)
    platform.swap_in(TAG, ["dump.rdb"])
    platform.start(TIMEOUT)
    wait_until_ready(target.port, None, container_of(target, docker_engine))
    assert target.client().dbsize() == 4


def test_a_host_directory_that_is_not_what_the_container_sees_is_not_used(
    docker_target_factory: Factory, tmp_path: Path
) -> None:
    platform = docker_target_factory().platform
    assert isinstance(platform, DockerPlatform)
    assert platform._host_view_differs(str(tmp_path), "/data") == (
        f"{tmp_path} here is not what the container sees at /data"
    )
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    assert "not a plain directory" in (platform._host_view_differs(str(link), "/data") or "")


def test_the_archive_way_swaps_without_reading_the_files_it_moves(
    docker_archive_target_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = docker_archive_target_factory()
    platform = target.platform
    assert isinstance(platform, DockerPlatform)
    assert "through the engine's archive API (direct access turned off)" in platform.describe()
    big = os.urandom(8 * 1024 * 1024)
    platform.stage_file(TAG, "dump.rdb", [big], len(big))
    platform.stop(TIMEOUT)
    platform.swap_in(TAG, ["dump.rdb"])
    platform.stage_file("t-second", "dump.rdb", [b"next"], 4)
    counted = count_archive_bytes(platform, monkeypatch)
    swap = platform.swap_in("t-second", ["dump.rdb"])  # the 8 MB file goes aside, by its header
    platform.swap_back(swap)
    assert sum(counted) < 1024 * 1024, f"{sum(counted)} bytes read from the engine"
    assert read_all(platform, "dump.rdb") == big


def test_go_times_to_nanoseconds() -> None:
    assert _go_time_ns("2026-11-25T17:30:01.123456789Z") == 1_795_627_801_123_456_789
    assert _go_time_ns("2026-11-25T18:30:01.5+01:00") == 1_795_627_801_500_000_000
    assert _go_time_ns("2026-11-25T17:30:01Z") == 1_795_627_801_000_000_000
