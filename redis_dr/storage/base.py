"""The storage contract every backend implements the same way.

Keys are '/'-separated relative paths (no leading slash). A backend is rooted
at the prefix of its URL: `s3://bucket/prefix` stores key `a/b` at
`prefix/a/b`. Writes are create-only: `put` never replaces an existing object
and raises `AlreadyExistsError` instead. Data moves as iterables of byte
chunks, so memory stays bounded whatever the object size.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from redis_dr.errors import ConfigError, RedisDRError

CHUNK_SIZE = 1 << 20
MiB = 1 << 20


def check_key(key: str) -> str:
    """Return key if it is a valid relative '/'-separated key, else raise ConfigError."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"invalid storage key {key!r}: use a relative path like 'instance/id/file'")
    return key


def check_prefix(prefix: str) -> str:
    """Return a list prefix ('' or a key start, may end with '/'), else raise ConfigError."""
    if prefix.startswith("/") or ".." in prefix.split("/"):
        raise ConfigError(f"invalid storage prefix {prefix!r}: use a relative path like 'instance/'")
    return prefix


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object."""

    key: str
    size: int
    modified: datetime | None = None


class Storage(abc.ABC):
    """A place that holds backup objects: a directory, an S3 or GCS bucket."""

    #: The URL this backend was opened from, with no secrets in it.
    url: str

    @abc.abstractmethod
    def put(self, key: str, chunks: Iterable[bytes], *, storage_class: str | None = None) -> ObjectInfo:
        """Store the chunks under key, create-only, and return the stored object's info.

        Streams with bounded memory (multipart for object stores). On any failure
        nothing is left under key (multipart uploads are aborted, temp files
        removed), and the original error propagates. Raises AlreadyExistsError if
        key exists.
        """

    @abc.abstractmethod
    def get(self, key: str) -> Iterator[bytes]:
        """Yield the object's bytes in chunks. Raises NotFoundError if absent.

        The NotFoundError is raised when the generator is first advanced at the
        latest; backends should raise it before yielding any data.
        """

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Return the object's info. Raises NotFoundError if absent."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with prefix, in key order (UTF-8 bytes), paginated."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove key. Deleting a missing key is not an error."""

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Store a small object create-only."""
        return self.put(key, [data])

    def get_bytes(self, key: str) -> bytes:
        """Read a small object whole."""
        return b"".join(self.get(key))

    def _error(self, exc: Exception, key: str) -> RedisDRError | None:
        """Our error for an SDK exception raised while working on key, or None to let it pass."""
        return None

    @contextlib.contextmanager
    def _translated(self, key: str = "") -> Iterator[None]:
        """Re-raise SDK exceptions inside the block as the project's own errors."""
        try:
            yield
        except RedisDRError:
            raise
        except Exception as exc:
            ours = self._error(exc, key)
            if ours is None:
                raise
            raise ours from exc

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""
