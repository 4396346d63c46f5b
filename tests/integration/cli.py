"""Running `redis-dr` in the test process, as a person would in a terminal."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
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


def wait_until_snapshot_runs(server: RedisServer, process: subprocess.Popen[Any], timeout: float = 120) -> None:
    """Block until `server` writes a snapshot (its fork child runs) while `process` is still running."""
    deadline = time.monotonic() + timeout
    while not server.client().info("persistence").get("rdb_bgsave_in_progress"):
        assert process.poll() is None, "the backup ended before its snapshot started"
        assert time.monotonic() < deadline, f"no snapshot started within {timeout:.0f}s"
        time.sleep(0.1)
