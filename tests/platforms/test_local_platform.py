"""What only the local platform does: redis.conf with includes, relative dirs, how it was started."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from redis_dr.errors import AccessDeniedError, NotFoundError, PermanentError, StorageFullError
from redis_dr.platforms.base import ServerState, staging_dir
from redis_dr.platforms.local import LocalControl, LocalPlatform
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.redis.server_log import exit_reason
from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.redis_server import find_redis_binary
from tests.fixtures.local_targets import spawn_detached, wait_for_ping
from tests.fixtures.targets import TargetServer
from tests.fixtures.unprivileged import NOBODY, as_nobody

pytestmark = pytest.mark.integration
Factory = Callable[..., TargetServer]
TIMEOUT = 30.0


def local(target: TargetServer) -> LocalPlatform:
    assert isinstance(target.platform, LocalPlatform)
    return target.platform


def cmdline(platform: LocalPlatform) -> list[str]:
    process = platform._find()
    assert process is not None
    return [part for part in Path(f"/proc/{process.pid}/cmdline").read_bytes().decode().split("\0") if part]


# --- reading the config ----------------------------------------------------------------------


def test_includes_glob_includes_and_last_value_wins(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("dbfilename b.rdb\n")
    (tmp_path / "conf.d" / "a.conf").write_text("dbfilename a.rdb\nappendonly yes\n")
    (tmp_path / "extra.conf").write_text("port 7001\nrequirepass 'from include'\n")
    conf = tmp_path / "redis.conf"
    conf.write_text(
        f"port 6390\ndir {tmp_path}/data\ninclude {tmp_path}/extra.conf\n"
        f'include "{tmp_path}/conf.d/*.conf"\nappendonly no\n'
    )
    platform = LocalPlatform(str(conf), env={})
    layout = platform.layout()
    assert (layout.dir, layout.dbfilename, layout.appendonly) == (f"{tmp_path}/data", "b.rdb", False)
    endpoint = platform.endpoint()
    assert endpoint is not None and (endpoint.host, endpoint.port, endpoint.password) == (
        "127.0.0.1", 7001, "from include",
    )  # fmt: skip


def test_relative_dir_and_include_of_a_stopped_server(tmp_path: Path) -> None:
    (tmp_path / "data" / "inc").mkdir(parents=True)
    (tmp_path / "data" / "inc" / "x.conf").write_text("dbfilename from-data-dir.rdb\n")
    conf = tmp_path / "redis.conf"
    conf.write_text("dir data\ninclude inc/x.conf\n")  # redis-server changes into `dir` as it reads it
    layout = LocalPlatform(str(conf), env={}).layout()
    assert (layout.dir, layout.dbfilename) == (f"{tmp_path}/data", "from-data-dir.rdb")


def test_relative_dir_of_a_server_started_elsewhere(tmp_path: Path) -> None:
    conf_dir, start_dir = tmp_path / "etc", tmp_path / "srv"
    conf_dir.mkdir()
    (start_dir / "data").mkdir(parents=True)
    port = free_port()
    conf = conf_dir / "redis.conf"
    conf.write_text(f'bind 127.0.0.1\nport {port}\ndir data\nsave ""\nlogfile redis.log\n')
    popen = spawn_detached([find_redis_binary(), str(conf)], start_dir)
    platform = LocalPlatform(str(conf), env={})
    target = TargetServer(platform=platform, port=port)
    try:
        wait_for_ping(target)
        assert platform.layout().dir == f"{start_dir}/data"
        platform.stop(TIMEOUT)
        platform.start(TIMEOUT)  # started again from the same directory
        wait_for_ping(target)
        assert target.client().config_get("dir")["dir"] == f"{start_dir}/data"
        assert platform.layout().dir == f"{start_dir}/data"
    finally:
        platform.kill()
        popen.wait(timeout=30)


def test_missing_config_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as caught:
        LocalPlatform(str(tmp_path / "absent.conf")).layout()
    assert str(caught.value) == f"Redis config file {tmp_path}/absent.conf does not exist: check the local:// target"
    conf = tmp_path / "redis.conf"
    conf.write_text(f"include {tmp_path}/gone.conf\n")
    with pytest.raises(NotFoundError, match=f"{tmp_path}/gone.conf does not exist"):
        LocalPlatform(str(conf)).layout()




def test_unreadable_config_file_is_access_denied(shared_dir: Path) -> None:
    conf = shared_dir / "redis.conf"
    conf.write_text("port 6390\nrequirepass hidden-pw\n")
    conf.chmod(0o600)
    result = as_nobody(lambda: LocalPlatform(str(conf)).layout())
    assert result["error"] == "AccessDeniedError"
    message = str(result["message"])
    assert message.startswith(f"Redis config file {conf} cannot be read (permission denied)")
    assert "\n" not in message and "hidden-pw" not in message


# --- passwords -----------------------------------------------------------------------------


def test_requirepass_is_used_and_never_shown(local_target_factory: Factory) -> None:
    secret = "pw-Sup3r-s3cret"
    target = local_target_factory(password=secret)
    platform = local(target)
    endpoint = platform.endpoint()
    assert endpoint is not None and endpoint.password == secret
    shown = [repr(endpoint), str(endpoint), platform.describe(), repr(platform._config()), repr(platform.layout())]
    assert not any(secret in text for text in shown)
    wrong = RedisEndpoint("redis", host="127.0.0.1", port=target.port, password="not-the-pw")
    with pytest.raises(AccessDeniedError) as caught:
        LocalPlatform(platform.config_path, connect=wrong).stop(TIMEOUT)
    assert secret not in str(caught.value) and "not-the-pw" not in str(caught.value)
    assert platform.state() is ServerState.RUNNING
    platform.stop(TIMEOUT)  # SHUTDOWN NOSAVE with the file's requirepass
    assert platform.state() is ServerState.STOPPED


# --- starting it again the way it was started -----------------------------------------------


def test_restart_keeps_argv_and_options(local_target_factory: Factory) -> None:
    target = local_target_factory({"set-proc-title": "no"}, args=["--maxmemory", "12mb"])
    platform = local(target)
    before = cmdline(platform)
    assert before[1:] == [platform.config_path, "--maxmemory", "12mb"]
    platform.stop(TIMEOUT)
    platform.start(TIMEOUT)
    wait_for_ping(target)
    assert cmdline(platform) == before
    assert target.client().config_get("maxmemory")["maxmemory"] in ("12582912", b"12582912")


def test_restart_when_the_process_title_hid_the_options(local_target_factory: Factory) -> None:
    target = local_target_factory(args=["--maxmemory", "12mb"])  # set-proc-title yes (the default)
    platform = local(target)
    assert cmdline(platform) == [f"{find_redis_binary()} 127.0.0.1:{target.port}"]
    platform.stop(TIMEOUT)
    assert platform._recipe is not None and not platform._recipe.args_known
    platform.start(TIMEOUT)  # `redis-server CONFIG`: the hidden options are unknown (documented)
    wait_for_ping(target)
    assert target.client().config_get("maxmemory")["maxmemory"] in ("0", b"0")


def test_runs_as_its_user_again_and_files_get_that_owner(local_target_factory: Factory) -> None:
    if os.geteuid() != 0:
        pytest.skip("starting a server as another user needs root")
    target = local_target_factory(user=f"{NOBODY}:{NOBODY}")
    platform = target.platform
    assert platform.owner() == (NOBODY, NOBODY)
    platform.stage_file("t1", "dump.rdb", [b"data"], 4)
    staged = platform.stat(f"{staging_dir('t1')}/dump.rdb")
    assert staged is not None and (staged.uid, staged.gid, staged.mode) == (NOBODY, NOBODY, 0o600)
    platform.stop(TIMEOUT)
    assert platform.owner() == (NOBODY, NOBODY)  # remembered
    platform.start(TIMEOUT)
    wait_for_ping(target)
    assert platform.owner() == (NOBODY, NOBODY)


def test_start_of_a_server_never_seen_running(local_target_factory: Factory) -> None:
    target = local_target_factory()
    target.platform.kill()
    fresh = LocalPlatform(local(target).config_path)  # knows nothing of how it was started
    fresh.start(TIMEOUT)
    wait_for_ping(target)
    assert cmdline(fresh) == [f"redis-server 127.0.0.1:{target.port}"]


def test_control_commands_from_an_environment_file(local_target_factory: Factory, tmp_path: Path) -> None:
    target = local_target_factory()
    config_path = local(target).config_path
    marker = tmp_path / "stopped-by-command"
    control = LocalControl(
        start_command=[find_redis_binary(), config_path, "--daemonize", "yes"], stop_command=["touch", str(marker)]
    )
    platform = LocalPlatform(config_path, control=control)
    assert "started by" in platform.describe()
    platform.stop(TIMEOUT)
    assert marker.exists() and platform.state() is ServerState.STOPPED
    platform.start(TIMEOUT)  # the command daemonizes: its own process exits, the server stays
    wait_for_ping(target)
    process = platform._find()
    assert process is not None and process.pid != os.getpid()


def test_control_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="either systemd_unit or"):
        LocalControl(systemd_unit="redis-server.service", start_command=["redis-server"])
    with pytest.raises(ValidationError, match="not a systemd unit name"):
        LocalControl(systemd_unit="-rf /")
    with pytest.raises(ValidationError, match="non-empty list"):
        LocalControl(start_command=[])
    assert LocalControl(systemd_unit="redis-server@main.service").systemd_unit == "redis-server@main.service"


# --- files -----------------------------------------------------------------------------------


def test_swap_in_refused_while_the_server_runs(local_target_factory: Factory) -> None:
    platform = local_target_factory().platform
    platform.stage_file("t1", "dump.rdb", [b"x"], 1)
    with pytest.raises(PermanentError, match="still runs: stop it before swapping"):
        platform.swap_in("t1", ["dump.rdb"])
    assert platform.stat(f"{staging_dir('t1')}/dump.rdb") is not None


def test_full_disk_is_storage_full(local_target_factory: Factory, tmpfs_factory: Callable[[str], Path]) -> None:
    disk = tmpfs_factory("1m")
    platform = local_target_factory({"dir": str(disk)}).platform
    with pytest.raises(StorageFullError) as caught:
        platform.stage_file("t1", "dump.rdb", [b"x" * 1024 * 1024] * 2, 2 * 1024 * 1024)
    assert f"data directory {disk}" in str(caught.value) and "\n" not in str(caught.value)
    assert platform.stat(f"{staging_dir('t1')}/dump.rdb") is None
    assert platform.stat(f"{staging_dir('t1')}/dump.rdb.partial") is None


def test_exit_reason_is_the_last_runs_warnings() -> None:
    log = "\n".join([
        "1:C 25 Nov 2026 11:46:08.493 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo",
        "1:M 25 Nov 2026 11:46:08.494 # Can't handle RDB format version 12",
        "2:C 25 Nov 2026 11:47:08.493 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo",
        "2:C 25 Nov 2026 11:47:08.493 # Redis version=7.0.15, bits=64, commit=00000000, modified=0",
        "2:M 25 Nov 2026 11:47:08.493 * Running mode=standalone, port=7773.",
        "2:M 25 Nov 2026 11:47:08.493 # Server initialized",
        "2:M 25 Nov 2026 11:47:08.493 # WARNING Memory overcommit must be enabled!",
        "2:M 25 Nov 2026 11:47:08.503 # Short read or OOM loading DB. Unrecoverable error, aborting now.",
        "[offset 0] Checking RDB file dump.rdb",
        "2:M 25 Nov 2026 11:47:08.503 # Internal error in RDB reading offset 0, function at rdb.c:3249",
    ])  # fmt: skip
    assert exit_reason(log) == (
        "Short read or OOM loading DB. Unrecoverable error, aborting now.; "
        "Internal error in RDB reading offset 0, function at rdb.c:3249"
    )
    assert exit_reason("2:M 25 Nov 2026 11:47:08.493 * Ready to accept connections\n") is None


def test_swap_in_failing_part_way_undoes_what_it_did(local_target_factory: Factory) -> None:
    target = local_target_factory()
    platform = local(target)
    data = Path(platform.layout().dir)
    platform.stage_file("t1", "a.rdb", [b"new a"], 5)
    platform.stop(TIMEOUT)
    (data / "a.rdb").write_bytes(b"old a")
    (data / "b.rdb").write_bytes(b"old b")
    (data / ".redis-dr" / "aside-t1").mkdir()
    (data / ".redis-dr" / "aside-t1" / "b.rdb").write_bytes(b"left by an earlier restore")
    with pytest.raises(PermanentError, match="aside-t1/b.rdb already exists"):
        platform.swap_in("t1", ["a.rdb", "b.rdb"])
    assert (data / "a.rdb").read_bytes() == b"old a" and (data / "b.rdb").read_bytes() == b"old b"
    assert (data / ".redis-dr" / "staging-t1" / "a.rdb").read_bytes() == b"new a"
    assert (data / ".redis-dr" / "aside-t1" / "b.rdb").read_bytes() == b"left by an earlier restore"


def test_a_server_we_restarted_is_found_by_the_next_run(local_target_factory: Factory) -> None:
    """Debian's redis-server is a link to redis-check-rdb: a server restarted through the link's
    target is named redis-check-rdb in /proc, and a later run (a fresh adapter) must still find it."""
    target = local_target_factory()
    config_path = local(target).config_path
    target.platform.kill()
    spawn_detached(["redis-server", config_path], Path(config_path).parent)  # as a person types it
    wait_for_ping(target)
    platform = LocalPlatform(config_path)
    platform.stop(TIMEOUT)
    platform.start(TIMEOUT)
    wait_for_ping(target)

    later = LocalPlatform(platform.config_path)
    assert later.state() is ServerState.RUNNING
    later.stop(TIMEOUT)
    assert later.state() is ServerState.STOPPED
    later.start(TIMEOUT)
    wait_for_ping(target)
    assert LocalPlatform(platform.config_path).state() is ServerState.RUNNING
