"""Issue 9 attacked as a hostile user and a 3 a.m. operator would: data checks that misbehave,
odd drill histories and metrics sinks that fail."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from redis_dr.drill.history import HISTORY_LIMIT, DrillRecord, read_history, record_key, trend, write_record
from redis_dr.errors import ConfigError
from redis_dr.manifest import backup_id_for
from redis_dr.restore_test.data_check import run_command_check, run_entry_point_check
from redis_dr.storage import open_storage

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


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether the process dies (SIGKILL is delivered asynchronously) within `within` seconds."""
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


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
    assert gone(int(daemon_pid_file.read_text()))


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


def drill_record(moment: datetime, rto: float, instance: str = "sessions") -> DrillRecord:
    return DrillRecord(
        id=backup_id_for(moment), instance=instance, target="t", strategy="file",
        backup_id="20261120T000000Z", backup_created_at=moment, killed_at=moment, rto_seconds=rto,
        rto_target_seconds=300, passed=True,
    )  # fmt: skip


def test_drill_records_dated_in_the_future_are_named_and_do_not_freeze_the_trend(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}")
    now = datetime.now(UTC)
    for years in range(1, HISTORY_LIMIT + 2):  # a drill host whose clock was years ahead
        write_record(storage, drill_record(now.replace(year=now.year + years), rto=1000.0))
    for days in range(1, 4):
        write_record(storage, drill_record(now - timedelta(days=days), rto=10.0))
    history = read_history(storage, "sessions")
    assert [record.rto_seconds for record in history.records] == [10.0, 10.0, 10.0]
    assert len(history.unreadable) == HISTORY_LIMIT + 1
    assert all("in the future" in line for line in history.unreadable)
    assert trend(40.0, history.records).regression


@pytest.mark.parametrize("rto", ["NaN", "-5", "Infinity"])
def test_a_drill_record_with_an_impossible_rto_is_named_not_counted(tmp_path: Path, rto: str) -> None:
    storage = open_storage(f"file://{tmp_path}")
    now = datetime.now(UTC)
    for days in range(2, 5):
        write_record(storage, drill_record(now - timedelta(days=days), rto=10.0))
    bad = drill_record(now - timedelta(days=1), rto=1.0)
    text = bad.to_json().decode().replace('"rto_seconds": 1.0', f'"rto_seconds": {rto}')
    storage.put_bytes(record_key("sessions", bad.id), text.encode())
    history = read_history(storage, "sessions")
    assert [record.rto_seconds for record in history.records] == [10.0, 10.0, 10.0]
    assert len(history.unreadable) == 1 and "rto_seconds" in history.unreadable[0]
