"""Lock files of this host: `flock` on a file in the user's state directory, named after what it
locks, holding a line that says who holds it. A lock dies with its process (no stale locks)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from redis_dr.errors import AccessDeniedError, ConfigError

STATE_ENV = "REDIS_DR_STATE_DIR"


def lock_dir() -> Path:
    """Where the locks live: $REDIS_DR_STATE_DIR/locks, else under $XDG_STATE_HOME or ~/.local/state."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]) / "locks"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "redis-dr" / "locks"


def open_lock_file(kind: str, name: str) -> int:
    """The lock file of `name` (a `kind` of lock: restore, lease), created when missing; one clear
    error when its directory is unusable."""
    directory = lock_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{kind}-{hashlib.sha256(name.encode()).hexdigest()[:24]}.lock"
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        error = AccessDeniedError if isinstance(exc, PermissionError) else ConfigError
        raise error(
            f"the {kind} of {name} needs a lock file in {directory}: {exc.strerror or exc}; "
            f"set {STATE_ENV} to a directory this user can write"
        ) from None


def write_holder(fd: int, holder: str) -> None:
    """Say in the (locked) file who holds it."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.encode(), 0)


def held_by(fd: int) -> str:
    """Who holds the lock, as its holder wrote it."""
    return os.pread(fd, 300, 0).decode("utf-8", "replace").strip() or "another process"
