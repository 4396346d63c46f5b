"""Preflight reads the target's topology: replicas warned about, Sentinel refused for the file strategy."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.processes import stop_process
from redis_dr.sandbox.redis_server import RedisServer, find_redis_binary
from tests.fixtures.targets import TargetServer
from tests.integration.cli import assert_one_clear_error, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]
Factory = Callable[..., TargetServer]



@pytest.fixture
def sentinel_watching(tmp_path: Path) -> Iterator[Callable[[int], None]]:
    """Start a real Sentinel monitoring the master on a port; wait until the master sees it."""
    started: list[subprocess.Popen[bytes]] = []

    def watch(master_port: int) -> None:
        port = free_port()
        conf = tmp_path / f"sentinel-{port}.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor sessions 127.0.0.1 {master_port} 1\n")
        process = subprocess.Popen([find_redis_binary(), str(conf), "--sentinel"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        started.append(process)
        client = RedisServer(port=master_port).client()
        deadline = time.monotonic() + 30
        while b"name=sentinel-" not in client.execute_command("CLIENT", "LIST"):  # type: ignore[no-untyped-call]
            assert process.poll() is None, "sentinel exited"
            assert time.monotonic() < deadline, "sentinel never connected to the master"
            time.sleep(0.1)

    yield watch
    for process in started:
        stop_process(process, grace=5)


def test_a_master_watched_by_sentinel_is_refused_for_the_file_strategy_and_replay_is_suggested(
    storage: str, local_target_factory: Factory, sentinel_watching: Callable[[int], None],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    target = local_target_factory()
    sentinel_watching(target.port)
    pid = target.client().info("server")["process_id"]

    code, _, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                           "--target", target.platform.target, "--yes")  # fmt: skip

    assert code == 6
    assert_one_clear_error(err, "Sentinel watches", "--strategy replay")
    assert target.client().info("server")["process_id"] == pid

    code, _, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                           "--target", target.platform.target, "--strategy", "replay", "--yes")  # fmt: skip
    assert code == 0, err
    assert target.client().info("server")["process_id"] == pid  # replay: no restart, no failover
    assert target.client().get("session:7") == b"7"


def test_replicas_of_the_target_are_named_in_the_plan(
    storage: str, local_target_factory: Factory, redis_factory: Callable[..., RedisServer],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    target = local_target_factory()
    replica = redis_factory({"replicaof": f"127.0.0.1 {target.port}"})
    deadline = time.monotonic() + 30
    while replica.client().info("replication")["master_link_status"] != "up":
        assert time.monotonic() < deadline, "the replica never connected"
        time.sleep(0.1)

    code, _, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                           "--target", target.platform.target)  # no --yes, no terminal: plan only  # fmt: skip

    assert code == 6
    assert "WARN    role: master with 1 replica(s): they resync a full copy of the restored data" in err
