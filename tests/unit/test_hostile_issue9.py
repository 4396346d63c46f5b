"""Issue 9 attacked as a hostile user and a 3 a.m. operator would: data checks that misbehave,
odd drill histories and metrics sinks that fail."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_dr.errors import ConfigError
from redis_dr.restore_test.data_check import run_command_check, run_entry_point_check

URL = "unix:///nowhere/redis.sock"
#: Released by the test that started a check hanging on it.
RELEASE = threading.Event()


def junk_ok(url: str) -> tuple[str, str]:
    return ("false", "no session could be decrypted")


def exits(url: str) -> None:
    sys.exit(0)


def hangs(url: str) -> bool:
    RELEASE.wait()
    return True


def many_lines(url: str) -> tuple[bool, str]:
    return (False, "first\nsecond \x1b[2J\x07last")


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "check.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def daemon_pid_file(tmp_path: Path) -> Iterator[Path]:
    """Where a check writes the pid of the daemon it forks; the daemon is killed afterwards."""
    path = tmp_path / "daemon.pid"
    yield path
    if path.exists():
        pid = int(path.read_text())
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_daemon_forked_by_the_check_command_does_not_outlive_it(
    tmp_path: Path, daemon_pid_file: Path
) -> None:
    check = script(
        tmp_path, f"sleep 300 </dev/null >/dev/null 2>&1 &\necho $! > {daemon_pid_file}\necho ok\n"
    )
    result = run_command_check([check], URL, timeout=60, passthrough=[])
    assert result.passed and result.last_line == "ok"
    assert not alive(int(daemon_pid_file.read_text()))


def test_a_check_that_prints_binary_or_control_characters_leaves_one_printable_line(tmp_path: Path) -> None:
    check = script(tmp_path, "printf 'ok\\n\\033]0;owned\\007\\000\\033[2Jgarbage\\r\\n'\nexit 3\n")
    result = run_command_check([check], URL, timeout=60, passthrough=[])
    assert result.exit_status == 3 and not result.passed
    assert result.last_line.isprintable() and "garbage" in result.last_line


def test_an_entry_point_answering_junk_for_ok_fails() -> None:
    result = run_entry_point_check(f"{__name__}:junk_ok", URL)
    assert not result.passed
    assert "str" in result.last_line


def test_an_entry_point_calling_sys_exit_is_a_failing_check_not_the_end_of_the_run() -> None:
    result = run_entry_point_check(f"{__name__}:exits", URL)
    assert not result.passed
    assert "sys.exit(0)" in result.last_line


def test_an_entry_point_message_is_one_printable_line() -> None:
    result = run_entry_point_check(f"{__name__}:many_lines", URL)
    assert not result.passed
    assert result.last_line.isprintable() and result.last_line.startswith("first")


def test_an_entry_point_that_hangs_fails_after_the_check_timeout() -> None:
    try:
        result = run_entry_point_check(f"{__name__}:hangs", URL, timeout=0.2)
    finally:
        RELEASE.set()
    assert not result.passed
    assert "timed out after" in result.last_line


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("raise RuntimeError('no config file')\n", "RuntimeError: no config file"),
        ("def f(:\n", "SyntaxError"),
    ],
)
def test_an_entry_point_module_that_fails_to_import_is_one_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, said: str
) -> None:
    (tmp_path / "hostile_check_module.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hostile_check_module", raising=False)
    with pytest.raises(ConfigError) as caught:
        run_entry_point_check("hostile_check_module:check", URL)
    assert "cannot be loaded" in str(caught.value) and said in str(caught.value)
    assert "\n" not in str(caught.value)
