"""Google Cloud Storage (or fake-gcs-server) as storage: `gs://bucket/prefix`."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

import google.api_core.exceptions as gexc
import google.auth.exceptions as gauth
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.fileio import BlobReader, BlobWriter

from redis_dr.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    RedisDRError,
    TransientError,
)
from redis_dr.storage.base import (
    CHUNK_SIZE,
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    MiB,
    ObjectInfo,
    Storage,
    check_dir_prefix,
    check_key,
    check_prefix,
)
from redis_dr.storage.parts import split_parts

_RESUMABLE_UNIT = 256 * 1024
_TRANSIENT = (gexc.TooManyRequests, gexc.ServerError, gexc.RetryError, gexc.DeadlineExceeded,
              requests.ConnectionError, requests.Timeout, gauth.TransportError, DataCorruption,
              ConnectionError, TimeoutError)  # fmt: skip
# GCS refuses an upload whose declared checksum is not that of the bytes it got:
# "Provided CRC32C \"...\" doesn't match calculated CRC32C \"...\"." (400).
_BAD_CHECKSUM = re.compile(r"(crc32c|md5).*(doesn't|does not|did not) match", re.IGNORECASE)
# The client computes CRC32C of every upload: sent with a single-request upload
# (the store checks it), compared with the store's own CRC32C after a resumable one.
_CHECKSUM = "crc32c"
# The tasks are the only retry layer: every call passes retry=None, or the
# library would retry for up to 120 s (a stat against a dead endpoint took 112 s).
_NO_RETRY = None


class GCSStorage(Storage):
    """Objects under `prefix` in a GCS bucket, written by streaming resumable upload.

    With `endpoint` (or STORAGE_EMULATOR_HOST) the client talks to an emulator
    with anonymous credentials; otherwise it uses Application Default Credentials.
    Create-only writes use `ifGenerationMatch=0`. Every request is one attempt
    (retry=None) with `timeout` (connect, read) seconds; uploads carry CRC32C.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        project: str | None = None,
        storage_class: str | None = None,
        part_size: int = 16 * MiB,
        page_size: int = 1000,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    ) -> None:
        if part_size <= 0 or part_size % _RESUMABLE_UNIT:
            raise ConfigError(f"GCS part size {part_size} must be a positive multiple of 256 KiB")
        self.bucket_name, self.prefix = bucket, prefix
        self.storage_class = storage_class
        self.part_size, self.page_size, self.timeout = part_size, page_size, timeout
        self.url = f"gs://{bucket}/{prefix}"
        endpoint = endpoint or os.environ.get("STORAGE_EMULATOR_HOST")
        self.endpoint = endpoint
        try:
            if endpoint:
                self._client = storage.Client(
                    project=project or "redis-dr",
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    client_options={"api_endpoint": endpoint},
                )
            else:
                self._client = storage.Client(project=project)
        except gauth.DefaultCredentialsError:
            raise AccessDeniedError(
                "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS, run "
                "'gcloud auth application-default login', or use a workload identity"
            ) from None
        # google-cloud-storage >= 3.10 fetches each bucket's metadata for tracing
        # in a background thread, with the default 120 s retry: a hidden second
        # request (and a retry loop) per bucket. Its own checks treat a falsy
        # cache as off (like DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA=true).
        self._client._bucket_metadata_cache = None
        self._bucket = self._client.bucket(bucket)

    # -- helpers -----------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _where(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}{key}"

    def _error(self, exc: Exception, key: str) -> RedisDRError | None:
        """Translate a google exception into ours (None: not an SDK error)."""
        where = self._where(key)
        if isinstance(exc, InvalidResponse):  # raised by resumable uploads and downloads
            status = getattr(exc.response, "status_code", 0)
            exc = gexc.from_http_status(status, str(exc))  # type: ignore[no-untyped-call]
        if isinstance(exc, gexc.PreconditionFailed):
            return AlreadyExistsError(f"{where} already exists")
        if isinstance(exc, DataCorruption) or (
            isinstance(exc, gexc.BadRequest) and _BAD_CHECKSUM.search(str(exc))
        ):
            return TransientError(
                f"GCS checksum mismatch for {where}: the bytes were damaged in transit ({exc}); try again"
            )
        if isinstance(exc, gexc.NotFound):
            return self._not_found(key)
        if isinstance(exc, gexc.Forbidden | gexc.Unauthorized | gauth.RefreshError):
            return AccessDeniedError(f"GCS refused access to {where} ({exc}): check credentials and IAM")
        if isinstance(exc, requests.ConnectionError | requests.ConnectTimeout):
            endpoint = self._client._connection.API_BASE_URL
            return TransientError(f"cannot reach GCS at {endpoint} (for {where})")
        if isinstance(exc, _TRANSIENT):
            return TransientError(f"GCS temporarily failed for {where}: {exc}")
        if isinstance(exc, gexc.GoogleAPICallError | gauth.GoogleAuthError):
            return PermanentError(f"GCS request failed for {where}: {exc}")
        return None

    def _not_found(self, key: str) -> NotFoundError:
        """GCS says 404 for a missing bucket and a missing object alike: ask which."""
        with contextlib.suppress(Exception):
            if not self._bucket.exists(timeout=self.timeout, retry=_NO_RETRY):
                return NotFoundError(f"bucket {self.bucket_name} does not exist: create it or fix the URL")
        return NotFoundError(f"{self._where(key)} not found")

    def _blob(self, key: str) -> storage.Blob:
        return self._bucket.blob(self._name(key))

    # -- contract ----------------------------------------------------------------

    def put(self, key: str, chunks: Iterable[bytes], *, storage_class: str | None = None) -> ObjectInfo:
        """Upload create-only: one request if it fits one part, else a resumable upload."""
        blob = self._blob(key)
        if storage_class or self.storage_class:
            blob.storage_class = storage_class or self.storage_class
        parts = split_parts(chunks, self.part_size)
        with self._translated(key):
            first = next(parts)
            second = next(parts, None)
            if second is None:
                blob.upload_from_string(
                    first, if_generation_match=0, checksum=_CHECKSUM, timeout=self.timeout, retry=_NO_RETRY
                )
            else:
                head = [first, second]
                del first, second
                self._resumable(blob, key, head, parts)
        return self.stat(key)

    def _resumable(self, blob: storage.Blob, key: str, head: list[bytes], rest: Iterator[bytes]) -> None:
        # fake-gcs-server ignores ifGenerationMatch on resumable uploads (real GCS
        # enforces it atomically), so also check first. The race this leaves exists
        # only on such emulators: two writers of one key could both pass the check.
        if blob.exists(timeout=self.timeout, retry=_NO_RETRY):
            raise AlreadyExistsError(f"{self._where(key)} already exists")
        writer = BlobWriter(
            blob, chunk_size=self.part_size, if_generation_match=0, checksum=_CHECKSUM,
            timeout=self.timeout, retry=_NO_RETRY,
        )  # fmt: skip
        try:
            while head:
                writer.write(head.pop(0))
            for part in rest:
                writer.write(part)
                del part
            writer.close()
        except DataCorruption:
            # The object was created (ifGenerationMatch=0: it is ours) but the
            # store's CRC32C is not that of the bytes sent: remove it.
            with contextlib.suppress(Exception):
                blob.delete(timeout=self.timeout, retry=_NO_RETRY)
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                writer.terminate()  # cancels the resumable session: nothing is created
            raise

    def get(self, key: str) -> Iterator[bytes]:
        """Fetch metadata now (so NotFoundError is raised at once) and stream ranges."""
        with self._translated(key):
            blob = self._bucket.get_blob(self._name(key), timeout=self.timeout, retry=_NO_RETRY)
        if blob is None:
            raise self._not_found(key)
        return self._stream(blob, key)

    def _stream(self, blob: storage.Blob, key: str) -> Iterator[bytes]:
        """Read exactly the generation's size in ranged requests of part_size.

        Never past the end: a range starting at the end is a 416, on which
        fake-gcs-server also drops the connection, and with no retry underneath
        the next request on that pooled connection could fail.
        """
        reader = BlobReader(blob, chunk_size=self.part_size, timeout=self.timeout, retry=_NO_RETRY)
        remaining = int(blob.size or 0)
        try:
            with self._translated(key):
                while remaining > 0:
                    chunk = reader.read(min(CHUNK_SIZE, remaining))
                    if not chunk:
                        raise IntegrityError(f"{self._where(key)} ended {remaining} bytes before its size")
                    remaining -= len(chunk)
                    yield chunk
        finally:
            reader.close()

    def stat(self, key: str) -> ObjectInfo:
        """Object metadata."""
        blob = self._metadata(key)
        return ObjectInfo(key, int(blob.size or 0), blob.updated)

    def _metadata(self, key: str) -> storage.Blob:
        """The object's blob with its metadata. Raises NotFoundError if absent."""
        with self._translated(key):
            blob = self._bucket.get_blob(self._name(key), timeout=self.timeout, retry=_NO_RETRY)
        if blob is None:
            raise self._not_found(key)
        return blob

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Pages of `page_size` objects, in key order."""
        full = self.prefix + check_prefix(prefix)
        blobs: Iterable[Any] = self._client.list_blobs(
            self._bucket, prefix=full, page_size=self.page_size, timeout=self.timeout, retry=_NO_RETRY
        )
        with self._translated(prefix):
            for blob in blobs:
                yield ObjectInfo(blob.name[len(self.prefix) :], int(blob.size or 0), blob.updated)

    def list_dirs(self, prefix: str = "") -> Iterator[str]:
        """Pages of objects.list with delimiter '/': the pages' prefixes, no objects read."""
        full = self.prefix + check_dir_prefix(prefix)
        blobs = self._client.list_blobs(
            self._bucket, prefix=full, delimiter="/", page_size=self.page_size,
            timeout=self.timeout, retry=_NO_RETRY,
        )  # fmt: skip
        with self._translated(prefix):
            for page in blobs.pages:
                for name in page.prefixes:  # set by the page-start hook, in the server's order
                    yield name[len(full) : -1]

    def _same_service(self, other: Storage) -> bool:
        """Whether other is a GCS location this client can rewrite from: same endpoint, same identity."""
        if not isinstance(other, GCSStorage) or other.endpoint != self.endpoint:
            return False
        mine, theirs = self._client._credentials, other._client._credentials
        return (type(mine), getattr(mine, "service_account_email", None)) == (
            type(theirs), getattr(theirs, "service_account_email", None)
        )

    def copy_from(self, source: Storage, source_key: str, key: str) -> ObjectInfo | None:
        """Rewrite inside GCS (repeated until done), create-only, pinned to the source's generation."""
        if not self._same_service(source):
            return None
        assert isinstance(source, GCSStorage)
        original = source._metadata(source_key)
        target = self._blob(key)
        if self.storage_class:
            target.storage_class = self.storage_class
        with self._translated(key):
            # fake-gcs-server ignores ifGenerationMatch on rewrite (it replaced an
            # existing object when tried); real GCS enforces it. Check first too.
            if target.exists(timeout=self.timeout, retry=_NO_RETRY):
                raise AlreadyExistsError(f"{self._where(key)} already exists")
            token: str | None = None
            while True:
                token, _done, _total = target.rewrite(
                    original, token=token, if_generation_match=0,
                    if_source_generation_match=original.generation, timeout=self.timeout, retry=_NO_RETRY,
                )  # fmt: skip
                if token is None:
                    break
        return ObjectInfo(key, int(target.size or 0), target.updated)  # the last rewrite returned it

    # stale_uploads / abort_upload: the base's "none". An unfinished resumable upload is
    # a session URI held by the client that started it: GCS offers no call that lists
    # them, stores nothing visible under the key, and drops the session after a week.

    def delete(self, key: str) -> None:
        """Delete the object; a missing object is fine, a missing bucket is not."""
        with self._translated(key):
            try:
                self._blob(key).delete(timeout=self.timeout, retry=_NO_RETRY)
            except gexc.NotFound:
                if not self._bucket.exists(timeout=self.timeout, retry=_NO_RETRY):
                    raise

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()
