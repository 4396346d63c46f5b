"""The storage contract every backend implements the same way.

Keys are '/'-separated relative paths (no leading slash). A backend is rooted
at the prefix of its URL: `s3://bucket/prefix` stores key `a/b` at
`prefix/a/b`. Writes are create-only: `put` and `copy_from` never replace an
existing object and raise `AlreadyExistsError` instead. Data moves as iterables
of byte chunks, so memory stays bounded whatever the object size.

Backends never retry: the Prefect tasks above them are the only retry layer.
Each request to a store makes one attempt, bounded by socket timeouts, and a
failure surfaces at once as a `TransientError` (or a permanent error).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from redis_dr.errors import ConfigError, RedisDRError

CHUNK_SIZE = 1 << 20
MiB = 1 << 20

#: Seconds to open a connection to a store before the request fails (per request).
CONNECT_TIMEOUT = 10.0
#: Seconds a request may wait for the next bytes of a response (or to send the next bytes).
READ_TIMEOUT = 60.0
#: The longest one request to a store can block: connect, then a read that never answers.
REQUEST_SECONDS = CONNECT_TIMEOUT + READ_TIMEOUT
#: The longest one storage call can block. No request is retried, and `stat`,
#: `delete`, `put_bytes` / `get_bytes` of a small object, `copy_from` below the
#: multipart threshold, and each step of `list` / `list_dirs` (one page) make at
#: most three requests in a row (e.g. the write, a HEAD to confirm it, a bucket
#: check that tells a missing bucket from a missing key). Streaming `put` / `get`
#: and multipart copies make one request per part, each within REQUEST_SECONDS:
#: they block at most this long without progress. A task's timeout must be above
#: this (plus DNS resolution, which no SDK bounds), so that an outage surfaces as
#: the backend's TransientError and not as the task's timeout.
MAX_CALL_SECONDS = 3 * REQUEST_SECONDS


def check_key(key: str) -> str:
    """Return key if it is a valid relative '/'-separated key, else raise ConfigError."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"invalid storage key {key!r}: use a relative path like 'instance/id/file'")
    return key


def check_dir_prefix(prefix: str) -> str:
    """Return a directory prefix ('' or ending with '/'), else raise ConfigError."""
    check_prefix(prefix)
    if prefix and (not prefix.endswith("/") or "" in prefix[:-1].split("/")):
        raise ConfigError(f"invalid storage directory {prefix!r}: use '' or a path ending with '/'")
    return prefix


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


@dataclass(frozen=True)
class StaleUpload:
    """A write that never finished: a hidden temp file of the file backend, an S3 multipart upload.

    It holds no object (nothing lists or reads it) but may hold bytes, which a
    prune removes once it is older than its grace period.
    """

    #: The file backend: the temp file's own key ('i/id/.dump.rdb.x1y2.partial');
    #: S3: the key the upload was to create.
    key: str
    #: When it was last known active: the temp file's last write; the upload's start (S3).
    started: datetime
    #: S3's UploadId; '' for a temp file.
    upload_id: str = ""


class Storage(abc.ABC):
    """A place that holds backup objects: a directory, an S3 or GCS bucket."""

    #: The URL this backend was opened from, with no secrets in it.
    url: str

    @abc.abstractmethod
    def put(self, key: str, chunks: Iterable[bytes], *, storage_class: str | None = None) -> ObjectInfo:
        """Store the chunks under key, create-only, and return the stored object's info.

        Streams with bounded memory (multipart for object stores) and sends the
        store's own checksum of every request where the service checks one (S3
        SHA-256 per part, GCS CRC32C), so the store refuses bytes damaged on the
        way. On any failure nothing is left: no object under key, no temp file,
        no directory the put created, no unfinished multipart upload. An error
        raised by `chunks` itself propagates unchanged; storage failures are
        translated (AccessDeniedError, StorageFullError, TransientError, ...).
        Raises AlreadyExistsError if key exists.
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
    def list_dirs(self, prefix: str = "") -> Iterator[str]:
        """Yield the names one level below prefix that hold objects, without reading the objects.

        prefix is '' or ends with '/': `list_dirs('sessions/')` yields
        '20261125T010000Z' for `sessions/20261125T010000Z/manifest.json`. A name
        is yielded once, without a '/', and only if some object's key starts with
        `prefix + name + '/'` (objects directly under prefix are not names).
        Fetched a page at a time (S3 and GCS list with delimiter '/'), so the cost
        is one request per page of names, whatever the number of objects below.

        Order: byte order of the names, which is the servers' own order for
        names made of characters above '/' (backup ids, 'a-z0-9_'). For a name
        holding a character below '/' ('-', '.', ' '), S3 and GCS order by
        `name + '/'` ('a-x' before 'a') and SeaweedFS by name: callers that need
        an exact order for such names sort what they collected. Raises
        NotFoundError for a missing bucket; a missing directory yields nothing.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove key. Deleting a missing key is not an error."""

    def copy_from(self, source: Storage, source_key: str, key: str) -> ObjectInfo | None:
        """Copy source's object source_key to key here, inside the store, create-only.

        Returns the new object's info, or None when this pair of locations cannot
        copy without the bytes passing through this process (different kinds of
        backend, different endpoints or credentials): the caller then streams
        `source.get()` into `put()`. A copy has the same guarantees as `put`: it
        never replaces an existing key (AlreadyExistsError), leaves nothing under
        key on failure, and is a second, independent copy of the bytes (never a
        link to the first). Raises NotFoundError naming the source if source_key
        does not exist. This default copies nothing and returns None.
        """
        return None

    def stale_uploads(self, prefix: str, started_before: datetime) -> Sequence[StaleUpload]:
        """Unfinished writes under prefix last active before `started_before`, in key order.

        A put that is still running is younger than any sensible cut-off (its
        temp file is written to, or its upload was started, within the stream
        limit). This default finds none: a backend whose unfinished writes hold
        nothing that can be listed (GCS) keeps it.
        """
        check_prefix(prefix)
        return []

    def abort_upload(self, upload: StaleUpload) -> bool:
        """Remove one write listed by `stale_uploads`: True if removed, False if it was gone
        already (or, for a temp file, written to since it was listed: a put still running).

        Some S3-compatible servers (SeaweedFS) answer an abort of a finished upload
        with success: there, True only says it is gone now.
        """
        return False

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
