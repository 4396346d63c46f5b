"""Stopping the server processes we start."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM, up to `grace` seconds to exit, then SIGKILL; the process is always reaped."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
