"""`redis-dr backup` in a terminal with no Prefect server configured: a temporary local API.

These run the real command in a subprocess with its own PREFECT_HOME: first as a
person would on a machine where Prefect has never been set up; the kill tests then
start from a copy of that home, its database already created, as every later run does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.demo_sessions import populate_session_store
from redis_dr.sandbox.redis_server import RedisServer
from tests.fixtures.redis_servers import TEST_SERVER_CONFIG
from tests.integration.cli import wait_until_snapshot_runs, wait_until_snapshot_streams

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


def default_signals() -> None:
    """Pre-exec hook: SIGINT and SIGTERM back to their defaults, whatever this test process inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def ignore_sigint() -> None:
    """Pre-exec hook: start the child as a shell starts a background job (`cmd &` in a script)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class FirstRun:
    """A backup run in a terminal where Prefect has never run, and what it left."""

    home: Path
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    """`redis-dr backup` in a fresh PREFECT_HOME, started with SIGINT ignored (as `cmd &` is).

    A Ctrl-C in its terminal reaches it while its snapshot is streaming. The run's
    home is kept: the kill tests start from copies of it (its database already made).
    """
    root = tmp_path_factory.mktemp("first-run")
    # ~1.5 s of snapshot (10 ms per key): long enough to be seen running, and interrupted.
    with RedisServer({**TEST_SERVER_CONFIG, "rdb-key-save-delay": "10000"}) as server:
        populate_session_store(server.client(), sessions=100, seed=4)
        process = subprocess.Popen(
            [CLI, "backup", "--redis-url", server.url, "--storage", f"file://{root / 'store'}",
             "--instance", "sessions"],
            env=terminal_env(root / "prefect-home"), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, preexec_fn=ignore_sigint,
        )  # fmt: skip
        try:
            wait_until_snapshot_runs(server, process)
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal the script runs in
            out, err = process.communicate(timeout=240)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    yield FirstRun(root / "prefect-home", process.returncode, out, err)


@pytest.fixture
def prefect_home(first_run: FirstRun, tmp_path: Path) -> Path:
    """A PREFECT_HOME of this test's own whose database exists already (a copy of the first run's)."""
    home = tmp_path / "prefect-home"
    shutil.copytree(first_run.home, home)
    return home


def test_backup_runs_on_a_temporary_api_that_records_the_run_and_its_logs(first_run: FirstRun) -> None:
    assert first_run.returncode == 0, first_run.stderr
    backup_id = first_run.stdout.strip()
    assert backup_id.endswith("Z")
    # No link to a UI that does not exist, no logs lost to a server stopped too early.
    assert "View at" not in first_run.stderr
    assert "Error logging to API" not in first_run.stderr
    assert "Traceback" not in first_run.stderr
    with sqlite3.connect(first_run.home / "prefect.db") as db:
        runs = db.execute("SELECT id, state_type FROM flow_run").fetchall()
        assert [state for _, state in runs] == ["COMPLETED"]
        messages = [m for (m,) in db.execute("SELECT message FROM log WHERE flow_run_id = ?", (runs[0][0],))]
    assert any("Finished in state Completed" in m for m in messages), messages


def test_started_with_sigint_ignored_ctrl_c_does_not_interrupt_it(first_run: FirstRun) -> None:
    # A command started as `cmd &` from a script (or under nohup) ignores SIGINT, and keeps
    # ignoring it: Ctrl-C during its snapshot (first_run) did not stop it, as POSIX shells intend.
    assert first_run.returncode == 0, first_run.stderr
    assert "interrupted" not in first_run.stderr


def test_killing_the_command_stops_its_temporary_api(
    redis_factory, prefect_home: Path, tmp_path: Path
) -> None:
    server = redis_factory({"rdb-key-save-delay": "2000"})
    populate_session_store(server.client(), sessions=4000, seed=5)
    process = subprocess.Popen(
        [CLI, "backup", "--redis-url", server.url, "--storage", f"file://{tmp_path / 'store'}",
         "--instance", "sessions"],
        env=terminal_env(prefect_home), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_snapshot_streams(server, process.pid, lambda: process.poll() is None, at_least=64 << 10)
        api_servers = children_of(process.pid)
        assert api_servers, "no temporary API process under the command"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while any(is_alive(pid) for pid in api_servers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(is_alive(pid) for pid in api_servers)


@pytest.mark.parametrize(("how", "exit_code"), [("ctrl-c", 130), ("sigterm", 143)])
def test_ctrl_c_or_sigterm_interrupts_the_backup_and_then_stops_the_api_in_order(
    redis_factory, prefect_home: Path, tmp_path: Path, how: str, exit_code: int
) -> None:
    server = redis_factory({"rdb-key-save-delay": "2000"})
    populate_session_store(server.client(), sessions=4000, seed=6)
    store = f"file://{tmp_path / 'store'}"
    env = terminal_env(prefect_home)
    process = subprocess.Popen(
        [CLI, "backup", "--redis-url", server.url, "--storage", store, "--instance", "sessions"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
        preexec_fn=default_signals,  # a foreground job takes Ctrl-C, even if pytest ignores it
    )  # fmt: skip
    try:
        wait_until_snapshot_streams(server, process.pid, lambda: process.poll() is None, at_least=64 << 10)
        api_servers = children_of(process.pid)
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        else:
            process.send_signal(signal.SIGTERM)  # `kill PID`, a service manager, a container stop
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == exit_code, err
    assert err.strip().splitlines()[-1] == (
        "redis-dr: interrupted: the step that was running committed nothing; "
        "a backup committed before it stays committed (see 'redis-dr list')"
    )
    assert "Error logging to API" not in err
    assert "Traceback" not in err
    assert api_servers and not any(is_alive(pid) for pid in api_servers)
    listing = subprocess.run(
        [CLI, "list", "--storage", store, "--instance", "sessions", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert listing.stdout.strip() == "[]"


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """A loopback port that accepts connections and never answers them (a hung server); its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def closed_port_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


@pytest.mark.parametrize("api", ["hung", "down"])
def test_a_configured_prefect_api_that_does_not_answer_is_one_transient_line(
    api: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(silent_listener()) if api == "hung" else closed_port_url()
        env = {**terminal_env(tmp_path / "prefect-home"), "PREFECT_API_URL": url}
        done = subprocess.run(
            [CLI, "backup", "--redis-url", redis_server.url, "--storage", f"file://{tmp_path / 'store'}",
             "--instance", "sessions"],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 75, done.stderr
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"redis-dr: error: the Prefect API at {url} does not answer"), done.stderr
    assert "unset PREFECT_API_URL to run with a temporary local API" in line
    assert done.stdout == ""
    assert not (tmp_path / "store").exists()  # nothing ran


def test_two_commands_started_at_once_on_a_new_prefect_home_both_back_up(
    redis_factory, tmp_path: Path
) -> None:
    """Both create the same Prefect database: one temporary API used to fail to start (exit 75)."""
    server = redis_factory()
    server.client().set("session:1", "x")
    env = terminal_env(tmp_path / "prefect-home")  # never used: its database does not exist yet
    args = [CLI, "backup", "--redis-url", server.url, "--storage", f"file://{tmp_path / 'b'}",
            "--instance", "sessions"]  # fmt: skip
    processes = [
        subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [process.communicate(timeout=120) for process in processes]
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err.decode()
    ids = {out.decode().strip() for out, _ in results}
    assert len(ids) == 2
