"""One restore per target on this host at a time: an advisory lock held for the whole restore.

Two restores of one target would stop, swap and start it under each other's feet.
The lock is `flock` on a file named after the target in the user's state
directory, so it dies with its process (no stale locks after a kill). Runs on
other hosts are kept apart by the per-instance lease (see ROADMAP, "Runs by itself").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from redis_dr.errors import RefusedError

STATE_ENV = "REDIS_DR_STATE_DIR"


def lock_dir() -> Path:
    """Where the locks live: $REDIS_DR_STATE_DIR/locks, else under $XDG_STATE_HOME or ~/.local/state."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]) / "locks"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "redis-dr" / "locks"


@contextlib.contextmanager
def target_lock(target: str) -> Iterator[None]:
    """Hold the restore lock of `target` (a target name or Redis address, no secrets) or refuse at once."""
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"restore-{hashlib.sha256(target.encode()).hexdigest()[:24]}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise RefusedError(
                f"another restore of {target} is running ({holder}): wait for it to finish; "
                "nothing was touched"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
