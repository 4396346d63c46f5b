"""`redis-dr backup` in a terminal with no Prefect server configured: a temporary local API.

These run the real command in a subprocess with its own PREFECT_HOME, as a
person would on a machine where Prefect has never been set up.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.demo_sessions import populate_session_store
from redis_dr.sandbox.redis_server import RedisServer
from tests.integration.cli import wait_until_snapshot_runs

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("redis-dr"))


def terminal_env(prefect_home: Path) -> dict[str, str]:
    """The environment of a terminal with no Prefect API configured."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(prefect_home)
    env["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
    return env


def children_of(pid: int) -> list[int]:
    """Direct children of a process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_backup_runs_on_a_temporary_api_that_records_the_run_and_its_logs(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    redis_server.client().set("session:1", "x")
    home = tmp_path / "prefect-home"
    result = subprocess.run(
        [CLI, "backup", "--redis-url", redis_server.url, "--storage", f"file://{tmp_path / 'store'}",
         "--instance", "sessions"],
        env=terminal_env(home), capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    backup_id = result.stdout.strip()
    assert backup_id.endswith("Z")
    # No link to a UI that does not exist, no logs lost to a server stopped too early.
    assert "View at" not in result.stderr
    assert "Error logging to API" not in result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(home / "prefect.db") as db:
        runs = db.execute("SELECT id, state_type FROM flow_run WHERE name = 'backup-sessions'").fetchall()
        assert [state for _, state in runs] == ["COMPLETED"]
        messages = [m for (m,) in db.execute("SELECT message FROM log WHERE flow_run_id = ?", (runs[0][0],))]
    assert any("Finished in state Completed" in m for m in messages), messages


def test_killing_the_command_stops_its_temporary_api(redis_factory, tmp_path: Path) -> None:
    server = redis_factory({"rdb-key-save-delay": "2000"})
    populate_session_store(server.client(), sessions=4000, seed=5)
    process = subprocess.Popen(
        [CLI, "backup", "--redis-url", server.url, "--storage", f"file://{tmp_path / 'store'}",
         "--instance", "sessions"],
        env=terminal_env(tmp_path / "prefect-home"), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_snapshot_runs(server, process)
        api_servers = children_of(process.pid)
        assert api_servers, "no temporary API process under the command"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while any(is_alive(pid) for pid in api_servers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(is_alive(pid) for pid in api_servers)


def test_ctrl_c_interrupts_the_backup_and_then_stops_the_api_in_order(redis_factory, tmp_path: Path) -> None:
    server = redis_factory({"rdb-key-save-delay": "2000"})
    populate_session_store(server.client(), sessions=4000, seed=6)
    store = f"file://{tmp_path / 'store'}"
    env = terminal_env(tmp_path / "prefect-home")
    process = subprocess.Popen(
        [CLI, "backup", "--redis-url", server.url, "--storage", store, "--instance", "sessions"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
    )  # fmt: skip
    try:
        wait_until_snapshot_runs(server, process)
        api_servers = children_of(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "redis-dr: interrupted; nothing was committed by the interrupted step"
    assert "Error logging to API" not in err
    assert "Traceback" not in err
    assert api_servers and not any(is_alive(pid) for pid in api_servers)
    listing = subprocess.run(
        [CLI, "list", "--storage", store, "--instance", "sessions", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert listing.stdout.strip() == "[]"
