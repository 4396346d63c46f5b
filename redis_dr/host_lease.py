"""A lease on this host: `flock` on a file named after it, waited for, gone with its process.

The runs of a terminal (`redis-dr ...` on a temporary Prefect API) keep apart with
it: that API runs no background services, so a Prefect concurrency lease left by a
killed run would never expire there, while a `flock` dies with its process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from redis_dr.lock_files import held_by, open_lock_file, write_holder

#: `REDIS_DR_LEASE=host`: runs keep instances apart with this lease instead of the Prefect
#: server's (the terminal's temporary API sets it: it revokes no lease a killed run left).
LEASE_MODE_ENV = "REDIS_DR_LEASE"
HOST_MODE = "host"
#: How often a waiting run tries the lock again.
POLL_SECONDS = 0.2


@contextlib.contextmanager
def host_lease(name: str, holder: str, wait_seconds: float, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the lease `name` for the block, waiting up to `wait_seconds` for it.

    `holder` says who holds it (e.g. a run's name): another run that has to wait is
    told, through `on_wait`, once. TimeoutError when the wait runs out.
    """
    fd = open_lock_file("lease", name)
    try:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    on_wait(held_by(fd))
                    told = True
                if time.monotonic() >= deadline:
                    raise TimeoutError(held_by(fd)) from None
                time.sleep(POLL_SECONDS)
        write_holder(fd, f"{holder} (pid {os.getpid()}, since {datetime.now(UTC):%H:%M:%S} UTC)")
        yield
    finally:
        os.close(fd)  # releases the lock
