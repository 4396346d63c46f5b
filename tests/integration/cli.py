"""Running `redis-dr` in the test process, as a person would in a terminal."""

from __future__ import annotations

import logging
import sys

import pytest

from cli.main import main


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
