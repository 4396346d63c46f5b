"""One exception tree for redis-dr.

Every error a user can meet is a `RedisDRError` whose `str()` is one line that
names what is wrong and what to do. Tasks retry `TransientError` only;
`PermanentError` fails at once.
"""

from __future__ import annotations


class RedisDRError(Exception):
    """Base of every error redis-dr raises on purpose."""

    exit_code = 1



def reworded(exc: RedisDRError, message: str) -> RedisDRError | None:
    """An error of the same type as `exc` (so the same exit code) saying `message`; None when that
    type takes more than a message (the caller decides what stands in for it)."""
    try:
        return type(exc)(message)
    except TypeError:
        return None

class TransientError(RedisDRError):
    """May succeed if tried again: timeouts, dropped connections, throttling."""

    exit_code = 75  # EX_TEMPFAIL


class PermanentError(RedisDRError):
    """Will fail the same way again until a person changes something."""


class ConfigError(PermanentError):
    """Bad input: a malformed URL, an unknown option, a missing setting."""

    exit_code = 2


class NotFoundError(PermanentError):
    """A bucket, object, backup or instance that does not exist."""

    exit_code = 3


class AlreadyExistsError(PermanentError):
    """A create-only write found the key already taken."""


class AccessDeniedError(PermanentError):
    """Authentication or authorisation refused (wrong password, NOPERM, 403)."""

    exit_code = 4


class UnsupportedError(PermanentError):
    """The server does not offer what this path needs (managed Redis, old version)."""


class IntegrityError(PermanentError):
    """Data does not match what was recorded: checksum, size or format."""

    exit_code = 5


class StorageFullError(PermanentError):
    """A storage location has no space left (disk full, quota exhausted)."""


class ServerFailureError(PermanentError):
    """The Redis server itself failed an operation (e.g. a failed BGSAVE, MISCONF)."""


class RefusedError(PermanentError):
    """A restore (or drill) was not started: preflight refused it, or nobody approved it.

    Nothing was touched."""

    exit_code = 6
