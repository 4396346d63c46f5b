"""A hostile user and a tired on-call engineer against `redis-dr restore`: odd input, leftovers
of killed runs, secrets where they do not belong. Each test proves one defect stays fixed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from flows.restore import lock_name, restore
from redis_dr.errors import ConfigError
from redis_dr.platforms.docker import DockerPlatform
from redis_dr.platforms.local import LocalPlatform
from redis_dr.restore.request import build_restore_request
from redis_dr.restore.target_lock import target_lock
from redis_dr.sandbox.redis_server import RedisServer, find_redis_binary
from tests.fixtures.local_targets import spawn_detached
from tests.fixtures.targets import TargetServer
from tests.integration.cli import assert_one_clear_error, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]



def recorded_runs_text() -> str:
    """Every flow run's parameters and every log line the Prefect API holds, as text."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        logs = client.read_logs()
    return json.dumps([run.parameters for run in runs], default=str) + "\n".join(log.message for log in logs)


def test_a_password_in_a_redis_target_url_never_reaches_the_flow_run(
    storage: str, redis_factory: Callable[..., RedisServer], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    secret = "Tr0ub4dor-hostile-9"
    target = redis_factory(password=secret)
    monkeypatch.setenv("REDIS_PASSWORD", "")  # recorded: the one the command moves there goes at teardown
    monkeypatch.delenv("REDIS_PASSWORD")
    code, out, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                             "--target", f"redis://:{secret}@127.0.0.1:{target.port}/0", "--yes",
                             "--no-checkpoint", "--json")  # fmt: skip
    assert code == 0, err
    assert target.client().get("session:3") == b"3"
    assert secret not in out + err
    assert secret not in recorded_runs_text()


def test_a_request_naming_a_redis_target_with_a_password_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as refused:
        build_restore_request(
            instance="sessions", storage="file:///tmp/b", target="redis://:Hidden-77@127.0.0.1:6379/0"
        )
    assert "password" in str(refused.value) and "Hidden-77" not in str(refused.value)


Factory = Callable[..., TargetServer]


def file_state(target: TargetServer) -> tuple[object, dict[str, bytes]]:
    """The target's server pid and its data files' bytes."""
    root = Path(target.platform.layout().dir)
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return target.client().info("server")["process_id"], files


def test_a_restore_of_a_target_under_restore_is_refused_however_its_config_path_is_spelled(
    storage: str, local_target_factory: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("REDIS_DR_STATE_DIR", str(tmp_path / "state"))
    target = local_target_factory({"save": "3600 1"})
    target.client().set("precious", "data")
    target.client().save()
    conf = Path(target.platform.layout().dir).parent / "redis.conf"
    link = tmp_path / "link.conf"
    link.symlink_to(conf)
    before = file_state(target)
    first = build_restore_request(instance="sessions", storage=storage, target=f"local://{conf}")
    with target_lock(lock_name(first)):  # a restore of the target, as first spelled, is running
        for spelling in (
            f"local://{conf.parent}/./redis.conf",
            f"local://{conf.parent}//redis.conf",
            f"local://{link}",
        ):
            code, _, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                                   "--target", spelling, "--yes", "--no-checkpoint")  # fmt: skip
            assert code == 6, (spelling, err)
            assert_one_clear_error(err, "another restore", "is running")
    assert file_state(target) == before


def test_a_restore_of_a_container_under_restore_is_refused_when_named_by_its_id(
    storage: str, docker_target_factory: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("REDIS_DR_STATE_DIR", str(tmp_path / "state"))
    target = docker_target_factory()
    target.client().set("precious", "data")
    platform = target.platform
    assert isinstance(platform, DockerPlatform)
    container_id = platform.identity().removeprefix("docker://")
    pid = target.client().info("server")["process_id"]
    first = build_restore_request(instance="sessions", storage=storage, target=platform.target)
    with target_lock(lock_name(first)):
        for spelling in (f"docker://{container_id}", f"docker://{container_id[:12]}"):
            code, _, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                                   "--target", spelling, "--yes", "--no-checkpoint")  # fmt: skip
            assert code == 6, (spelling, err)
            assert_one_clear_error(err, "another restore", "is running")
    assert target.client().info("server")["process_id"] == pid
    assert target.client().get("precious") == b"data"


@pytest.fixture
def socket_only_target(tmp_path: Path) -> Iterator[tuple[LocalPlatform, redis.Redis]]:
    """A local redis-server listening on a unix socket only (port 0), its password with spaces and quotes."""
    base = tmp_path / "sock-target"
    (base / "data").mkdir(parents=True)
    sock, password = base / "redis.sock", "p a s s \"q'uote"
    conf = base / "redis.conf"
    conf.write_text(
        f'port 0\nunixsocket {sock}\ndir {base / "data"}\nlogfile {base / "redis.log"}\nsave ""\n'
        'requirepass "p a s s \\"q\'uote"\n'
    )
    platform = LocalPlatform(str(conf))
    spawn_detached([find_redis_binary(), str(conf)], base)
    client = redis.Redis(unix_socket_path=str(sock), password=password)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "the socket-only target did not start"
            time.sleep(0.02)
    yield platform, client
    platform.kill()


def test_a_target_listening_on_a_unix_socket_only_is_restored(
    storage: str, socket_only_target: tuple[LocalPlatform, redis.Redis], capsys: pytest.CaptureFixture[str]
) -> None:
    """The restarted server runs a moment before its socket exists: that is not a failure (it was,
    and then the rollback could not stop it either: exit 70). Three runs, as the gap is short."""
    platform, client = socket_only_target
    for attempt in range(3):
        client.set("precious", attempt)
        code, _, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                               "--target", platform.target, "--yes", "--no-checkpoint")  # fmt: skip
        assert code == 0, err
        assert client.get("session:7") == b"7" and client.get("precious") is None


def test_restores_run_back_to_back_within_one_second_both_succeed(
    storage: str, local_target_factory: Factory
) -> None:
    """The second used to find the first's aside directory (same tag, the same UTC second) after it
    had stopped the target: failed and rolled back, a needless outage."""
    target = local_target_factory({"save": "3600 1"})
    target.client().set("precious", "data")
    target.client().save()  # a dump.rdb that each restore moves aside
    request = build_restore_request(instance="sessions", storage=storage, target=target.platform.target,
                                    checkpoint=False)  # fmt: skip
    second = int(time.time())
    while int(time.time()) == second:  # start on a fresh second: both runs fall within it
        time.sleep(0.005)
    tags = [restore(request, approved=True).tag for _ in range(2)]
    assert len(set(tags)) == 2
    assert target.client().get("session:5") == b"5"
