"""Stopping the server processes we start."""

from __future__ import annotations

import ctypes
import signal
import subprocess
from typing import Any

_PR_SET_PDEATHSIG = 1


def stop_process(process: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM, up to `grace` seconds to exit, then SIGKILL; the process is always reaped."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def die_with_parent() -> None:
    """A `preexec_fn`: the child gets SIGKILL when the thread that started it dies, even by SIGKILL
    (Linux PR_SET_PDEATHSIG), so that nothing we start outlives a killed run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
