"""Amazon S3 (or an S3-compatible server) as storage: `s3://bucket/prefix?region=...`."""

from __future__ import annotations

import base64
import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions as bce
import google_crc32c
from botocore.config import Config

from redis_dr.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    ConfigError,
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
    StaleUpload,
    Storage,
    check_dir_prefix,
    check_key,
    check_prefix,
)
from redis_dr.storage.parts import split_parts

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef, HeadObjectOutputTypeDef

    _PartJob = Callable[[str], CompletedPartTypeDef]  # upload id -> the completed part

MIN_PART_SIZE = 5 * MiB
GiB = 1024 * MiB
MAX_PARTS = 10_000
#: Above this size CopyObject is refused by S3: copy in parts (UploadPartCopy).
COPY_OBJECT_LIMIT = 5 * GiB
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
           "InvalidToken", "ExpiredToken", "AccountProblem", "403"}  # fmt: skip
# The store computed another checksum than the one sent with the bytes: they were
# damaged on the way, and sending them again (a retry of the task) is the remedy.
_BAD_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
              "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "503", "500"}  # fmt: skip
_NETWORK = (bce.EndpointConnectionError, bce.ConnectionClosedError, bce.ReadTimeoutError,
            bce.ConnectTimeoutError, bce.ConnectionError, bce.HTTPClientError,
            bce.ResponseStreamingError, bce.IncompleteReadError)  # fmt: skip


#: Environment variables that decide which credentials and settings a boto3 session finds.
_AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED")  # fmt: skip
_SESSIONS: dict[tuple[str | None, tuple[str | None, ...]], boto3.session.Session] = {}
_SESSIONS_LOCK = threading.Lock()


def _shared_session(profile: str | None) -> boto3.session.Session:
    """One boto3 session per profile and AWS environment, reused by every location.

    A new session reloads botocore's service data (~0.1-0.2 s, several times per
    backup); a client made from a warm session takes ~5 ms. The environment is part
    of the key, so changed credentials in the environment get a session of their own.
    """
    key = (profile, tuple(os.environ.get(name) for name in _AWS_ENV))
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            try:
                session = boto3.session.Session(profile_name=profile)
            except bce.ProfileNotFound:
                raise ConfigError(f"AWS profile {profile!r} not found in ~/.aws/config") from None
            _SESSIONS[key] = session
        return session


class S3Storage(Storage):
    """Objects under `prefix` in an S3 bucket, written by bounded-memory multipart upload.

    Credentials come from boto3's usual chain (environment, profile, instance
    role), never from the URL. Create-only writes use `If-None-Match: *` on
    PutObject, CompleteMultipartUpload and CopyObject (SeaweedFS 4.x honours all
    three). Every upload carries its CRC32C (`x-amz-checksum-crc32c` on
    PutObject and on each UploadPart, the parts' checksums on
    CompleteMultipartUpload), which the store checks against the bytes it
    received (SeaweedFS 4.48 answers BadDigest on a mismatch, like AWS). CRC32C,
    not SHA-256: it runs at ~16 GB/s here against SHA-256's ~1.7 GB/s, and a
    second SHA-256 pass over every part cost the 1 GB S3 backup 0.8 s of its data
    path; our own SHA-256 of the whole object stays in the manifest. botocore
    makes one attempt per request: the tasks are the only retry layer.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str | None = None,
        endpoint: str | None = None,
        storage_class: str | None = None,
        profile: str | None = None,
        part_size: int = 16 * MiB,
        page_size: int = 1000,
        max_in_flight: int = 2,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        copy_threshold: int = COPY_OBJECT_LIMIT,
        copy_part_size: int = GiB,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ConfigError(f"S3 part size {part_size} is below the 5 MiB minimum")
        if not 1 <= page_size <= 1000:
            raise ConfigError(f"S3 page size {page_size} must be between 1 and 1000")
        if not 0 < copy_threshold <= COPY_OBJECT_LIMIT or copy_part_size < MIN_PART_SIZE:
            raise ConfigError("S3 copy threshold must be at most 5 GiB and copy parts at least 5 MiB")
        self.bucket, self.prefix = bucket, prefix
        self.storage_class = storage_class
        self.part_size, self.page_size, self.max_in_flight = part_size, page_size, max_in_flight
        self.copy_threshold, self.copy_part_size = copy_threshold, copy_part_size
        self.url = f"s3://{bucket}/{prefix}"
        config = Config(
            region_name=region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # One attempt per request. In the client config `max_attempts` counts
            # retries after the first attempt (3 meant 4 requests), while
            # `total_max_attempts` counts every attempt and overrides AWS_MAX_ATTEMPTS.
            retries={"mode": "standard", "total_max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if endpoint else None,
            max_pool_connections=max(10, max_in_flight + 2),
        )
        self._session = _shared_session(profile)
        with _SESSIONS_LOCK:  # a boto3 session is not thread-safe
            self._client: S3Client = self._session.client("s3", endpoint_url=endpoint, config=config)

    # -- helpers -----------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _error(self, exc: Exception, key: str = "") -> RedisDRError | None:
        """Translate a botocore exception into ours (None: not an SDK error)."""
        where = f"s3://{self.bucket}/{self.prefix}{key}"
        if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
            return AccessDeniedError(
                f"no AWS credentials for {where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance role"
            )
        if isinstance(exc, bce.EndpointConnectionError | bce.ConnectTimeoutError):
            return TransientError(f"cannot reach S3 at {self._client.meta.endpoint_url} (for {where})")
        if isinstance(exc, _NETWORK):
            return TransientError(f"S3 connection problem for {where}: {exc}")
        if isinstance(exc, bce.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            message = f"{code or status}: {error.get('Message', '')}".rstrip(": ")
            if code == "NoSuchBucket":
                return NotFoundError(f"bucket {self.bucket} does not exist: create it or fix the URL")
            if code in _DENIED or status == 403:
                return AccessDeniedError(
                    f"S3 refused access to {where} ({message}): check credentials and policy"
                )
            if code in ("PreconditionFailed", "412") or status == 412:
                return AlreadyExistsError(f"{where} already exists")
            if code in _BAD_DIGEST:
                return TransientError(
                    f"S3 refused the bytes sent to {where} ({message}): they did not match "
                    "their checksum on arrival (damaged in transit); try again"
                )
            if code in ("NoSuchKey", "NotFound", "404") or status == 404:
                return NotFoundError(f"{where} not found")
            if code in _THROTTLED or status >= 500 or status == 429:
                return TransientError(f"S3 temporarily failed for {where} ({message})")
            return PermanentError(f"S3 request failed for {where} ({message})")
        if isinstance(exc, bce.BotoCoreError):
            return PermanentError(f"S3 request failed for {where}: {exc}")
        return None

    def _not_found(self, key: str) -> NotFoundError:
        """A HEAD 404 carries no code: ask whether the bucket or the key is missing."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except bce.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return NotFoundError(f"bucket {self.bucket} does not exist: create it or fix the URL")
        return NotFoundError(f"s3://{self.bucket}/{self.prefix}{key} not found")

    # -- contract ----------------------------------------------------------------

    def _storage_class(self, storage_class: str | None = None) -> dict[str, Any]:
        chosen = storage_class or self.storage_class
        return {"StorageClass": chosen} if chosen else {}

    def put(self, key: str, chunks: Iterable[bytes], *, storage_class: str | None = None) -> ObjectInfo:
        """Upload create-only: one PutObject if it fits one part, else multipart."""
        name = self._name(key)
        extra = self._storage_class(storage_class)
        parts = split_parts(chunks, self.part_size)
        with self._translated(key):
            first = next(parts)
            second = next(parts, None)
            if second is None:
                self._client.put_object(
                    Bucket=self.bucket, Key=name, Body=first, IfNoneMatch="*",
                    ChecksumCRC32C=_crc32c(first), **extra,
                )  # fmt: skip
            else:
                head = [first, second]
                del first, second  # only `head` may hold them, so they are freed once sent
                extra["ChecksumAlgorithm"] = "CRC32C"
                self._multipart(name, self._part_uploads(name, head, parts), extra)
        return self.stat(key)

    def _multipart(self, name: str, parts: Iterator[_PartJob], extra: dict[str, Any]) -> None:
        """Run each part job (at most max_in_flight at once), then complete create-only; abort on failure."""
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=name, **extra)["UploadId"]
        try:
            done: list[CompletedPartTypeDef] = []
            pending: deque[Future[CompletedPartTypeDef]] = deque()
            with ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="s3-part") as pool:
                try:
                    for job in parts:
                        while len(pending) >= self.max_in_flight:
                            done.append(pending.popleft().result())
                        pending.append(pool.submit(job, upload_id))
                        del job  # the job holds its part's bytes: free them once sent
                    while pending:
                        done.append(pending.popleft().result())
                finally:
                    for future in pending:
                        future.cancel()
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": done},
                IfNoneMatch="*",
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            raise

    def _part_uploads(self, name: str, head: list[bytes], rest: Iterator[bytes]) -> Iterator[_PartJob]:
        """One job per part, holding no reference to a part once its job is handed out."""
        for number, body in enumerate(_chain(head, rest), start=1):
            job = _bind(self._upload_part, name, number, body)
            del body
            yield job
            del job

    def _upload_part(self, name: str, number: int, body: bytes, upload_id: str) -> CompletedPartTypeDef:
        checksum = _crc32c(body)
        response = self._client.upload_part(
            Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=body,
            ChecksumCRC32C=checksum,
        )  # fmt: skip
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumCRC32C": checksum}

    # -- server-side copy --------------------------------------------------------

    def _same_service(self, other: Storage) -> bool:
        """Whether other is an S3 location this client can copy from inside the store."""
        if not isinstance(other, S3Storage):
            return False
        mine, theirs = self._client.meta, other._client.meta
        if (mine.endpoint_url, mine.region_name) != (theirs.endpoint_url, theirs.region_name):
            return False
        with self._translated():
            a, b = self._session.get_credentials(), other._session.get_credentials()
        if a is None or b is None:
            return False
        return a.get_frozen_credentials() == b.get_frozen_credentials()

    def copy_from(self, source: Storage, source_key: str, key: str) -> ObjectInfo | None:
        """CopyObject (UploadPartCopy above `copy_threshold`) on the same endpoint and credentials."""
        if not self._same_service(source):
            return None
        assert isinstance(source, S3Storage)
        head = source._head(source_key)
        size, etag = head["ContentLength"], head["ETag"]
        copy_source: CopySourceTypeDef = {"Bucket": source.bucket, "Key": source._name(source_key)}
        name = self._name(key)
        with self._translated(key):
            if size <= self.copy_threshold:
                result = self._client.copy_object(
                    Bucket=self.bucket, Key=name, CopySource=copy_source, CopySourceIfMatch=etag,
                    IfNoneMatch="*", **self._storage_class(),
                )  # fmt: skip
                return ObjectInfo(key, size, result["CopyObjectResult"].get("LastModified"))
            with contextlib.suppress(NotFoundError):  # refuse before copying gigabytes in vain
                self._head(key)
                raise AlreadyExistsError(f"s3://{self.bucket}/{name} already exists")
            part = max(self.copy_part_size, -(-size // MAX_PARTS))
            jobs = (
                _bind(self._copy_part, name, number, copy_source, etag, start, min(start + part, size))
                for number, start in enumerate(range(0, size, part), start=1)
            )
            self._multipart(name, jobs, self._storage_class())
        return self.stat(key)

    def _copy_part(
        self, name: str, number: int, source: CopySourceTypeDef, etag: str, start: int, end: int,
        upload_id: str,
    ) -> CompletedPartTypeDef:
        """UploadPartCopy of the source's bytes [start, end), only while its ETag is etag."""
        response = self._client.upload_part_copy(
            Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number,
            CopySource=source, CopySourceRange=f"bytes={start}-{end - 1}", CopySourceIfMatch=etag,
        )  # fmt: skip
        return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}

    def get(self, key: str) -> Iterator[bytes]:
        """Start the GET now (so NotFoundError is raised at once) and stream the body."""
        with self._translated(key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._name(key))
        return self._stream(response["Body"], key)

    def _stream(self, body: Any, key: str) -> Iterator[bytes]:
        try:
            with self._translated(key):
                yield from body.iter_chunks(CHUNK_SIZE)
        finally:
            body.close()

    def stat(self, key: str) -> ObjectInfo:
        """HEAD the object."""
        head = self._head(key)
        return ObjectInfo(key, head["ContentLength"], head["LastModified"])

    def _head(self, key: str) -> HeadObjectOutputTypeDef:
        try:
            with self._translated(key):
                return self._client.head_object(Bucket=self.bucket, Key=self._name(key))
        except NotFoundError:
            raise self._not_found(key) from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """ListObjectsV2 pages of `page_size` keys, yielded in key order.

        AWS returns keys in UTF-8 binary order, but filer-backed servers such as
        SeaweedFS walk their directory tree ('a/1' before 'a-x'), so the pages are
        gathered and sorted: memory grows with the number of keys under prefix.
        """
        full = self.prefix + check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=full, PaginationConfig={"PageSize": self.page_size}
        )
        found: list[ObjectInfo] = []
        with self._translated(prefix):
            for page in pages:
                found += (
                    ObjectInfo(obj["Key"][len(self.prefix) :], obj["Size"], obj["LastModified"])
                    for obj in page.get("Contents", [])
                )
        found.sort(key=lambda info: info.key.encode())
        yield from found

    def list_dirs(self, prefix: str = "") -> Iterator[str]:
        """ListObjectsV2 with Delimiter '/': pages of `page_size` common prefixes, no objects read."""
        full = self.prefix + check_dir_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=full, Delimiter="/", PaginationConfig={"PageSize": self.page_size}
        )
        with self._translated(prefix):
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    yield common["Prefix"][len(full) : -1]

    def delete(self, key: str) -> None:
        """DeleteObject (S3 reports success for a missing key)."""
        with self._translated(key):
            self._client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def stale_uploads(self, prefix: str, started_before: datetime) -> Sequence[StaleUpload]:
        """Unfinished multipart uploads under prefix started before the cut-off (ListMultipartUploads).

        A failed put aborts its own upload; one whose process died leaves it, and
        S3 bills its parts until it is aborted (or a lifecycle rule does so).
        """
        full = self.prefix + check_prefix(prefix)
        found: list[StaleUpload] = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        with self._translated(prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for upload in page.get("Uploads", []):
                    started = upload["Initiated"].astimezone(UTC)
                    key = upload["Key"][len(self.prefix) :]
                    if started < started_before:
                        found.append(StaleUpload(key, started, upload["UploadId"]))
        return sorted(found, key=lambda upload: (upload.key.encode(), upload.started))

    def abort_upload(self, upload: StaleUpload) -> bool:
        """AbortMultipartUpload; False if S3 says the upload is gone (completed or aborted meanwhile)."""
        try:
            with self._translated(upload.key):
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._name(upload.key), UploadId=upload.upload_id
                )
        except NotFoundError:
            return False
        return True

    def abort_stale_uploads(self, older_than: timedelta) -> int:
        """Abort unfinished multipart uploads under the prefix started before now - older_than."""
        stale = self.stale_uploads("", datetime.now(UTC) - older_than)
        return sum(self.abort_upload(upload) for upload in stale)

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()


def _crc32c(data: bytes) -> str:
    """The base64 big-endian CRC32C S3 expects in ChecksumCRC32C."""
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def _bind(function: Callable[..., CompletedPartTypeDef], *args: Any) -> _PartJob:
    """A part job: function(*args, upload_id)."""
    return lambda upload_id: function(*args, upload_id)


def _chain(head: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    """Yield head's parts (releasing each) then rest, holding no extra references."""
    while head:
        yield head.pop(0)
    yield from rest
