"""The host lease of terminal runs: waited for, names its holder, and dies with its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from redis_dr.host_lease import host_lease


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_DR_STATE_DIR", str(tmp_path))


def hold_in_another_process(name: str) -> subprocess.Popen[bytes]:
    """A process that takes the lease, says so on stdout, then sleeps until killed."""
    code = textwrap.dedent(f"""
        import time
        from redis_dr.host_lease import host_lease
        with host_lease({name!r}, "run 'backup-sessions-1'", 5, print):
            print("held", flush=True)
            time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=dict(os.environ))
    assert process.stdout is not None and process.stdout.readline() == b"held\n"
    return process


def test_a_second_holder_waits_naming_the_first_and_gets_it_once_its_process_is_killed() -> None:
    holder = hold_in_another_process("redis-dr-qa-sessions")
    told: list[str] = []
    try:
        with pytest.raises(TimeoutError) as caught, host_lease("redis-dr-qa-sessions", "run 'b'", 0.3, told.append):
            pass
        assert told == [str(caught.value)]
        assert told[0].startswith(f"run 'backup-sessions-1' (pid {holder.pid}, since ")
        with host_lease("redis-dr-qa-cache", "run 'c'", 0, told.append):  # another instance: free
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with host_lease("redis-dr-qa-sessions", "run 'b'", 0, told.append):  # no stale lock after a kill
        pass
    assert len(told) == 1
