"""Amazon S3 (or an S3-compatible server) as storage: `s3://bucket/prefix?region=...`."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions as bce
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
from redis_dr.storage.base import CHUNK_SIZE, MiB, ObjectInfo, Storage, check_key, check_prefix
from redis_dr.storage.parts import split_parts

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIN_PART_SIZE = 5 * MiB
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
           "InvalidToken", "ExpiredToken", "AccountProblem", "403"}  # fmt: skip
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
              "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "503", "500"}  # fmt: skip
_NETWORK = (bce.EndpointConnectionError, bce.ConnectionClosedError, bce.ReadTimeoutError,
            bce.ConnectTimeoutError, bce.ConnectionError, bce.HTTPClientError,
            bce.ResponseStreamingError, bce.IncompleteReadError)  # fmt: skip


class S3Storage(Storage):
    """Objects under `prefix` in an S3 bucket, written by bounded-memory multipart upload.

    Credentials come from boto3's usual chain (environment, profile, instance
    role), never from the URL. Create-only writes use `If-None-Match: *` on
    PutObject and CompleteMultipartUpload (SeaweedFS 4.x honours both).
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
        max_attempts: int = 3,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ConfigError(f"S3 part size {part_size} is below the 5 MiB minimum")
        if not 1 <= page_size <= 1000:
            raise ConfigError(f"S3 page size {page_size} must be between 1 and 1000")
        self.bucket, self.prefix = bucket, prefix
        self.storage_class = storage_class
        self.part_size, self.page_size, self.max_in_flight = part_size, page_size, max_in_flight
        self.url = f"s3://{bucket}/{prefix}"
        config = Config(
            region_name=region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if endpoint else None,
            max_pool_connections=max(10, max_in_flight + 2),
        )
        try:
            session = boto3.session.Session(profile_name=profile)
        except bce.ProfileNotFound:
            raise ConfigError(f"AWS profile {profile!r} not found in ~/.aws/config") from None
        self._client: S3Client = session.client("s3", endpoint_url=endpoint, config=config)

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

    def put(self, key: str, chunks: Iterable[bytes], *, storage_class: str | None = None) -> ObjectInfo:
        """Upload create-only: one PutObject if it fits one part, else multipart."""
        name = self._name(key)
        extra: dict[str, Any] = {}
        if storage_class or self.storage_class:
            extra["StorageClass"] = storage_class or self.storage_class
        parts = split_parts(chunks, self.part_size)
        with self._translated(key):
            first = next(parts)
            second = next(parts, None)
            if second is None:
                self._client.put_object(Bucket=self.bucket, Key=name, Body=first, IfNoneMatch="*", **extra)
            else:
                head = [first, second]
                del first, second  # only `head` may hold them, so they are freed once sent
                self._multipart(name, head, parts, extra)
        return self.stat(key)

    def _multipart(self, name: str, head: list[bytes], rest: Iterator[bytes], extra: dict[str, Any]) -> None:
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=name, **extra)["UploadId"]
        try:
            done: list[CompletedPartTypeDef] = []
            pending: deque[Future[CompletedPartTypeDef]] = deque()
            with ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="s3-part") as pool:
                try:
                    for number, body in enumerate(_chain(head, rest), start=1):
                        while len(pending) >= self.max_in_flight:
                            done.append(pending.popleft().result())
                        pending.append(pool.submit(self._upload_part, name, upload_id, number, body))
                        del body
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

    def _upload_part(self, name: str, upload_id: str, number: int, body: bytes) -> CompletedPartTypeDef:
        response = self._client.upload_part(
            Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

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
        try:
            with self._translated(key):
                head = self._client.head_object(Bucket=self.bucket, Key=self._name(key))
        except NotFoundError:
            raise self._not_found(key) from None
        return ObjectInfo(key, head["ContentLength"], head["LastModified"])

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

    def delete(self, key: str) -> None:
        """DeleteObject (S3 reports success for a missing key)."""
        with self._translated(key):
            self._client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def abort_stale_uploads(self, older_than: timedelta) -> int:
        """Abort unfinished multipart uploads under the prefix started before now - older_than."""
        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        paginator = self._client.get_paginator("list_multipart_uploads")
        with self._translated():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < cutoff:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        return aborted

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()


def _chain(head: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    """Yield head's parts (releasing each) then rest, holding no extra references."""
    while head:
        yield head.pop(0)
    yield from rest
