"""One restore per target on this host at a time: an advisory lock held for the whole restore.

Two restores of one target would stop, swap and start it under each other's feet.
The lock is `flock` on a file named after the target in the user's state
directory (redis_dr/lock_files.py), so it dies with its process (no stale locks
after a kill). Runs on other hosts are kept apart by the per-instance lease (flows/lease.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import UTC, datetime

from redis_dr.errors import RefusedError
from redis_dr.lock_files import held_by, open_lock_file, write_holder


@contextlib.contextmanager
def target_lock(target: str) -> Iterator[None]:
    """Hold the restore lock of `target` (a target name or Redis address, no secrets) or refuse at once."""
    fd = open_lock_file("restore", target)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefusedError(
                f"another restore of {target} is running ({held_by(fd)}): wait for it to finish; "
                "nothing was touched"
            ) from None
        write_holder(fd, f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        yield
    finally:
        os.close(fd)  # releases the lock
