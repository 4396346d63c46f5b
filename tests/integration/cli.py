"""Running `redis-dr` in the test process, as a person would in a terminal."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from cli.main import main
from redis_dr.sandbox.redis_server import RedisServer


def _point_prefect_console_at_current_stderr() -> None:
    """Prefect's console handler keeps the stderr of the test that configured it; use ours."""
    for handler in logging.getLogger().handlers:
        console = getattr(handler, "console", None)
        if console is not None:
            console.file = sys.stderr


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `redis-dr ARGS`; return exit code, stdout, stderr."""
    capsys.readouterr()
    _point_prefect_console_at_current_stderr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_clear_error(err: str, *fragments: str) -> str:
    """The last stderr line is our error naming the fragments; no traceback anywhere."""
    assert "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("redis-dr: error: "), err
    for fragment in fragments:
        assert fragment in line, line
    return line


def wait_until_snapshot_runs(
    server: RedisServer, process: subprocess.Popen[Any], timeout: float = 120
) -> None:
    """Block until `server` writes a snapshot (its fork child runs) while `process` is still running."""
    deadline = time.monotonic() + timeout
    while not server.client().info("persistence").get("rdb_bgsave_in_progress"):
        assert process.poll() is None, "the backup ended before its snapshot started"
        assert time.monotonic() < deadline, f"no snapshot started within {timeout:.0f}s"
        time.sleep(0.1)


def bytes_read_from(port: int, pid: int) -> int:
    """Most bytes process `pid` has read over one TCP connection to `port` (tcp_info, from `ss`).

    The kernel's `bytes_received` less the bytes still waiting unread in the socket
    (Recv-Q): what the process has actually taken in.
    """
    result = subprocess.run(
        ["ss", "-tinHp", "state", "established", f"( dport = :{port} )"],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    most = 0
    for head, info in zip(lines[::2], lines[1::2], strict=False):
        if f"pid={pid}," not in head:
            continue
        received = re.search(r"\bbytes_received:(\d+)", info)
        if received:
            most = max(most, int(received.group(1)) - int(head.split()[0]))
    return most


def wait_until_snapshot_streams(
    server: RedisServer,
    pid: int,
    still_running: Callable[[], bool],
    at_least: int = 1 << 20,
    timeout: float = 120,
) -> None:
    """Block until `server` runs a snapshot and process `pid` has read `at_least` bytes of it.

    `still_running` says whether the backup is still under way (it must not end first).
    """
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is needed to see the bytes a backup has received")
    deadline = time.monotonic() + timeout
    while not (
        server.client().info("persistence").get("rdb_bgsave_in_progress")
        and bytes_read_from(server.port, pid) >= at_least
    ):
        assert still_running(), "the backup ended before it received its snapshot"
        assert time.monotonic() < deadline, f"no snapshot streamed within {timeout:.0f}s"
        time.sleep(0.05)


def backup_with_cli(
    capsys: pytest.CaptureFixture[str], redis_url: str, storage: str, *extra: str, instance: str = "sessions"
) -> str:
    """`redis-dr backup` that must succeed; the new backup's id."""
    code, out, err = run_cli(
        capsys, "backup", "--redis-url", redis_url, "--storage", storage, "--instance", instance, *extra
    )
    assert code == 0, err
    return out.strip()
