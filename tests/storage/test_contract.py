"""One contract suite, run against every backend on a real server."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import google_crc32c
import pytest

from redis_dr.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    ConfigError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from redis_dr.sandbox.ports import free_port
from redis_dr.storage import Storage, open_storage
from redis_dr.storage.base import MiB, StaleUpload
from redis_dr.storage.file import FileStorage
from redis_dr.storage.gcs import GCSStorage
from redis_dr.storage.location import StorageLocation
from redis_dr.storage.s3 import S3Storage
from tests.servers.seaweedfs import SeaweedFS
from tests.storage.dead_endpoint import DeadEndpoint

pytestmark = pytest.mark.integration
PART = 5 * MiB


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that differ per offset and seed."""
    block = bytes((i * 31 + seed) % 251 for i in range(4099))
    return (block * (size // len(block) + 1))[:size]


def chunked(data: bytes, size: int = MiB + 7) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def store(storage_url: str) -> Iterator[Storage]:
    storage = open_storage(storage_url, part_size=PART, page_size=2)
    yield storage
    storage.close()


def sibling_url(storage_url: str, tmp_path: Path) -> str:
    """Another, empty location on the same service (same endpoint and credentials)."""
    parts = urlsplit(storage_url)
    if parts.scheme == "file":
        return f"file://{tmp_path / 'sibling'}"  # not created: the first write makes it
    return urlunsplit(parts._replace(path=f"/{uuid.uuid4().hex}"))


def b64_crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()  # type: ignore[no-untyped-call]


def missing_bucket_url(storage_url: str) -> tuple[str, str]:
    """The same URL with a bucket (or root directory) that does not exist, and its name."""
    parts = urlsplit(storage_url)
    if parts.scheme == "file":
        return storage_url + "/absent", parts.path + "/absent"
    return urlunsplit(parts._replace(netloc="redis-dr-absent")), "redis-dr-absent"


@pytest.mark.parametrize("size", [0, 1000, 12 * MiB + 123], ids=["empty", "small", "multipart"])
def test_round_trip(store: Storage, size: int) -> None:
    data = pattern(size)
    info = store.put("inst/20260101T000000Z/dump.rdb.zst", chunked(data))
    assert (info.key, info.size) == ("inst/20260101T000000Z/dump.rdb.zst", size)
    assert info.modified is not None
    assert store.stat(info.key).size == size
    assert store.get_bytes(info.key) == data
    assert all(len(c) <= 16 * MiB for c in store.get(info.key))


@pytest.mark.parametrize("size", [10, 12 * MiB], ids=["small", "multipart"])
def test_put_is_create_only(store: Storage, size: int) -> None:
    store.put("k/manifest.json", chunked(pattern(size, 1)))
    with pytest.raises(AlreadyExistsError, match="already exists"):
        store.put("k/manifest.json", chunked(pattern(size, 2)))
    assert store.get_bytes("k/manifest.json") == pattern(size, 1)
    assert [o.key for o in store.list()] == ["k/manifest.json"]


def test_missing_key(store: Storage) -> None:
    with pytest.raises(NotFoundError, match="nope/x"):
        store.get("nope/x")  # raised before iterating
    with pytest.raises(NotFoundError, match="nope/x"):
        store.stat("nope/x")


def test_list_by_prefix_in_key_order_with_pagination(store: Storage) -> None:
    keys = ["a/2", "a/10", "a-x", "a/1", "b/1", "a/sub/z", "c"]
    for key in keys:
        store.put_bytes(key, key.encode())
    assert [o.key for o in store.list()] == sorted(keys)
    assert [o.key for o in store.list("a/")] == ["a/1", "a/10", "a/2", "a/sub/z"]
    assert [o.key for o in store.list("a")] == ["a-x", "a/1", "a/10", "a/2", "a/sub/z"]
    assert [o.key for o in store.list("a/1")] == ["a/1", "a/10"]
    assert list(store.list("zzz/")) == []
    assert {o.key: o.size for o in store.list("b/")} == {"b/1": 3}


def test_delete(store: Storage) -> None:
    store.put_bytes("d/one", b"1")
    store.put_bytes("d/two", b"2")
    store.delete("d/one")
    store.delete("d/one")  # missing is fine
    store.delete("never/was")
    assert [o.key for o in store.list()] == ["d/two"]
    with pytest.raises(NotFoundError):
        store.stat("d/one")
    store.put_bytes("d/one", b"again")  # a deleted key can be written anew
    assert store.get_bytes("d/one") == b"again"


@pytest.mark.parametrize("before_failure", [100, 7 * MiB], ids=["small", "multipart"])
def test_failed_put_leaves_nothing(store: Storage, before_failure: int) -> None:
    def failing() -> Iterator[bytes]:
        yield from chunked(pattern(before_failure))
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        store.put("f/data", failing())
    assert list(store.list()) == []
    with pytest.raises(NotFoundError):
        store.stat("f/data")
    if isinstance(store, S3Storage):
        uploads = store._client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
        assert uploads.get("Uploads", []) == []
    if store.url.startswith("file://"):
        root = StorageLocation.parse(store.url).bucket_or_path
        assert os.listdir(root) == []  # no temp file, and no directory the put made (f/)


def test_missing_bucket(storage_url: str) -> None:
    url, name = missing_bucket_url(storage_url)
    store = open_storage(url, part_size=PART)
    for call in (lambda: store.get("x"), lambda: store.stat("x")):
        with pytest.raises(NotFoundError, match=name):
            call()
    if url.startswith("file://"):  # a directory not created yet lists empty; put creates it
        assert list(store.list()) == []
        assert list(store.list_dirs()) == []
    else:
        with pytest.raises(NotFoundError, match=name):
            list(store.list())
        with pytest.raises(NotFoundError, match=name):
            list(store.list_dirs("inst/"))
        with pytest.raises(NotFoundError, match=name):
            store.put_bytes("x", b"1")
        with pytest.raises(NotFoundError, match=name):
            store.put("x", chunked(pattern(11 * MiB)))


def test_s3_wrong_credentials(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + seaweedfs.secret_key)
    store = open_storage(f"s3://redis-dr-test/creds?endpoint={seaweedfs.endpoint}")
    with pytest.raises(AccessDeniedError):
        store.put_bytes("x", b"1")
    with pytest.raises(AccessDeniedError):
        list(store.list())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unknown-key")
    with pytest.raises(AccessDeniedError):
        store.get("x")


def test_s3_no_credentials(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    store = open_storage(f"s3://redis-dr-test/creds?endpoint={seaweedfs.endpoint}")
    with pytest.raises(AccessDeniedError, match="AWS_ACCESS_KEY_ID"):
        store.stat("x")


def test_s3_unreachable_is_transient(seaweedfs: SeaweedFS) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3Storage("redis-dr-test", endpoint=endpoint)
    with pytest.raises(TransientError, match=f"cannot reach S3 at {endpoint}"):
        store.stat("x")


def test_s3_abort_stale_uploads(seaweedfs: SeaweedFS) -> None:
    store = open_storage(f"s3://redis-dr-test/{uuid.uuid4().hex}?endpoint={seaweedfs.endpoint}")
    assert isinstance(store, S3Storage)
    client, bucket = store._client, store.bucket
    client.create_multipart_upload(Bucket=bucket, Key=store.prefix + "stale/part")
    client.create_multipart_upload(Bucket=bucket, Key="elsewhere/part")  # outside the prefix
    assert store.abort_stale_uploads(timedelta(hours=1)) == 0
    assert store.abort_stale_uploads(timedelta(0)) == 1
    assert client.list_multipart_uploads(Bucket=bucket, Prefix=store.prefix).get("Uploads", []) == []
    assert S3Storage(bucket, "elsewhere/", endpoint=seaweedfs.endpoint).abort_stale_uploads(timedelta(0)) == 1


def test_file_backend_does_not_import_sdks(tmp_path: object) -> None:
    code = (
        "import sys; from redis_dr.storage import open_storage;"
        f"s = open_storage('file://{tmp_path}'); s.put_bytes('a', b'1');"
        "bad = [m for m in ('boto3', 'botocore', 'google.cloud.storage') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- listing names one level down -------------------------------------------------

IDS = [f"202611{day:02d}T{hour:02d}0000Z" for day in range(1, 8) for hour in range(24)][:150]


def test_list_dirs_pages_through_names_without_reading_objects(store: Storage) -> None:
    for backup_id in IDS:
        store.put_bytes(f"sessions/{backup_id}/manifest.json", b"{}")
    for backup_id in IDS[:3]:
        store.put_bytes(f"sessions/{backup_id}/dump.rdb.zst", b"rdb")
    store.put_bytes("sessions/20261201T000000Z/sub/deeper", b"1")  # a name with no object of its own
    store.put_bytes("sessions/loose.json", b"{}")  # an object, not a name
    store.put_bytes("cache/x", b"1")
    pages: list[dict[str, Any]] = []
    if isinstance(store, S3Storage):
        store._client.meta.events.register(
            "after-call.s3.ListObjectsV2", lambda parsed, **_: pages.append(parsed)
        )
    names = list(store.list_dirs("sessions/"))
    assert names == [*IDS, "20261201T000000Z"]
    assert list(store.list_dirs("")) == ["cache", "sessions"]
    assert list(store.list_dirs("sessions/20261201T000000Z/")) == ["sub"]
    assert list(store.list_dirs("sessions/20261201T000000Z/sub/")) == []
    assert list(store.list_dirs("absent/")) == []
    if isinstance(store, S3Storage):  # a page of 2 names per request, and never an object under a name
        listed = [p for p in pages if p.get("Prefix", "").endswith("/sessions/")]
        assert len(names) / 2 <= len(listed) <= len(names) / 2 + 1
        assert [o["Key"] for p in listed for o in p.get("Contents", [])] == [store.prefix + "sessions/loose.json"]
    for bad in ("sessions", "/sessions/", "a//"):
        with pytest.raises(ConfigError):
            list(store.list_dirs(bad))


def test_list_dirs_names_with_punctuation(store: Storage) -> None:
    for name in ("a", "a-x", "a.b", "b"):
        store.put_bytes(f"i/{name}/manifest.json", b"{}")
    assert sorted(store.list_dirs("i/")) == ["a", "a-x", "a.b", "b"]  # the order of such names is the server's


def test_list_dirs_skips_a_put_in_progress(store: Storage) -> None:
    if not isinstance(store, FileStorage):
        pytest.skip("object stores show an object only once its upload completes")
    store.put_bytes("i/done/manifest.json", b"{}")
    (store.root / "i" / "pending").mkdir()
    (store.root / "i" / "pending" / ".dump.rdb.1234.partial").write_bytes(b"half")
    assert list(store.list_dirs("i/")) == ["done"]


# -- unfinished writes --------------------------------------------------------------


def leave_unfinished_upload(store: Storage, key: str, written: datetime | None = None) -> bool:
    """What a put killed half-way through leaves for `key`: a temp file (its last write at
    `written`, default now) or an S3 multipart upload with one part. False on GCS, where it
    leaves nothing that can be listed."""
    if isinstance(store, FileStorage):
        final = store.root / key
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.parent / f".{final.name}.k2x9q1.partial"
        temp.write_bytes(b"half a backup")
        if written is not None:
            os.utime(temp, (written.timestamp(), written.timestamp()))
        return True
    if isinstance(store, S3Storage):
        client, name = store._client, store.prefix + key
        upload_id = client.create_multipart_upload(Bucket=store.bucket, Key=name)["UploadId"]
        client.upload_part(Bucket=store.bucket, Key=name, UploadId=upload_id, PartNumber=1, Body=b"half")
        return True
    return False


def test_stale_uploads_are_listed_by_prefix_and_age_then_aborted(store: Storage) -> None:
    now = datetime.now(UTC)
    an_hour_ago = now - timedelta(hours=1)
    if not leave_unfinished_upload(store, "i/20260101T000000Z/dump.rdb", written=an_hour_ago - timedelta(hours=1)):
        assert store.stale_uploads("i/", now + timedelta(days=1)) == []  # GCS: none can be listed
        return
    leave_unfinished_upload(store, "other/20260101T000000Z/dump.rdb", written=an_hour_ago - timedelta(hours=1))
    store.put_bytes("i/20260101T000000Z/reservation.json", b"{}")
    assert [o.key for o in store.list("i/")] == ["i/20260101T000000Z/reservation.json"], "never listed as objects"

    cutoff = now + timedelta(hours=1) if isinstance(store, S3Storage) else an_hour_ago  # S3: started now
    stale = store.stale_uploads("i/", cutoff)
    assert len(stale) == 1
    assert stale[0].key.startswith("i/20260101T000000Z/")
    assert stale[0].started < cutoff
    assert store.stale_uploads("i/", stale[0].started) == [], "only those started before the cut-off"

    assert store.abort_upload(stale[0]) is True
    assert store.stale_uploads("i/", cutoff) == []
    if isinstance(store, FileStorage):  # SeaweedFS answers an abort of a gone upload with success
        assert store.abort_upload(stale[0]) is False, "gone already"
    assert len(store.stale_uploads("other/", cutoff)) == 1, "other prefixes are untouched"
    assert [o.key for o in store.list()] == ["i/20260101T000000Z/reservation.json"]


def test_a_temp_file_written_since_it_was_listed_is_not_removed(store: Storage) -> None:
    if not isinstance(store, FileStorage):
        pytest.skip("an object store's unfinished upload is aborted whatever it did since")
    written = datetime.now(UTC) - timedelta(hours=2)
    leave_unfinished_upload(store, "i/20260101T000000Z/dump.rdb", written=written)
    [stale] = store.stale_uploads("i/", datetime.now(UTC) - timedelta(hours=1))
    temp = store.root / stale.key
    with temp.open("ab") as handle:  # the put is alive after all
        handle.write(b" more")
    assert store.abort_upload(stale) is False
    assert temp.read_bytes() == b"half a backup more"
    with pytest.raises(PermanentError, match="not a temp file"):
        store.abort_upload(StaleUpload(key="i/20260101T000000Z/dump.rdb", started=written))


def test_abort_leaves_no_empty_directory(store: Storage) -> None:
    if not isinstance(store, FileStorage):
        pytest.skip("object stores have no directories")
    leave_unfinished_upload(store, "i/20260101T000000Z/dump.rdb", written=datetime.now(UTC) - timedelta(hours=2))
    [stale] = store.stale_uploads("", datetime.now(UTC) - timedelta(hours=1))
    assert store.abort_upload(stale)
    assert list(store.root.iterdir()) == []


# -- server-side copy --------------------------------------------------------------

KEY = "inst/20260101T000000Z/dump.rdb.zst"


@pytest.mark.parametrize("size", [1000, 12 * MiB + 5], ids=["small", "large"])
def test_copy_from_same_service(store: Storage, storage_url: str, tmp_path: Path, size: int) -> None:
    data = pattern(size, 3)
    store.put(KEY, chunked(data))
    other = open_storage(sibling_url(storage_url, tmp_path), part_size=PART, page_size=2)
    info = other.copy_from(store, KEY, KEY)
    assert info is not None and (info.key, info.size) == (KEY, size) and info.modified is not None
    assert other.get_bytes(KEY) == data

    store.put_bytes("inst/other", b"other bytes")
    with pytest.raises(AlreadyExistsError, match="already exists"):
        other.copy_from(store, "inst/other", KEY)
    with pytest.raises(NotFoundError, match=f"{store.url}.*nope/x|nope/x"):
        other.copy_from(store, "nope/x", "inst/new")
    assert [o.key for o in other.list()] == [KEY]  # refused copies left nothing
    assert other.get_bytes(KEY) == data

    if isinstance(store, FileStorage):  # a second copy of the bytes, not a second name for them
        with (store.root / KEY).open("r+b") as original:
            original.write(b"damaged")
    store.delete(KEY)
    assert other.get_bytes(KEY) == data
    other.close()


def test_copy_between_services_is_left_to_the_caller(store: Storage, tmp_path: Path) -> None:
    with DeadEndpoint("hangup") as dead:
        others: list[Storage] = [
            S3Storage("redis-dr-test", "p/", endpoint=dead.url, region="us-east-1"),
            GCSStorage("redis-dr-test", "p/", endpoint=dead.url),
        ]
        if not isinstance(store, FileStorage):
            others.append(FileStorage(tmp_path / "elsewhere"))
        store.put_bytes("k", b"1")
        for other in others:
            assert store.copy_from(other, "k", "copy") is None, other.url
            assert other.copy_from(store, "k", "copy") is None, other.url
        assert dead.connections() == 0  # decided without asking either store
    assert [o.key for o in store.list()] == ["k"]


def test_s3_copy_in_parts(seaweedfs: SeaweedFS) -> None:
    def location() -> S3Storage:
        return S3Storage(
            "redis-dr-test", f"{uuid.uuid4().hex}/", endpoint=seaweedfs.endpoint, region="us-east-1",
            part_size=PART, copy_threshold=6 * MiB, copy_part_size=PART,
        )  # fmt: skip

    source, target = location(), location()
    data = pattern(12 * MiB + 5, 4)
    source.put(KEY, chunked(data))
    info = target.copy_from(source, KEY, KEY)
    assert info is not None and info.size == len(data)
    assert target.get_bytes(KEY) == data
    head = target._client.head_object(Bucket=target.bucket, Key=target._name(KEY))
    assert head["ETag"].endswith('-3"')  # three UploadPartCopy parts: 5 + 5 + 2 MiB
    with pytest.raises(AlreadyExistsError):
        target.copy_from(source, KEY, KEY)
    uploads = target._client.list_multipart_uploads(Bucket=target.bucket, Prefix=target.prefix)
    assert uploads.get("Uploads", []) == []


# -- checksums the store confirms --------------------------------------------------


@pytest.mark.parametrize("size", [1000, 12 * MiB + 123], ids=["single", "multipart"])
def test_the_store_holds_the_checksum_of_the_bytes(store: Storage, size: int) -> None:
    data = pattern(size, 5)
    store.put(KEY, chunked(data))
    if isinstance(store, S3Storage):
        head = store._client.head_object(Bucket=store.bucket, Key=store._name(KEY), ChecksumMode="ENABLED")
        parts = [data[i : i + PART] for i in range(0, size, PART)]
        if len(parts) == 1:
            assert head["ChecksumCRC32C"] == b64_crc32c(data)
        else:  # a composite checksum: the CRC32C of the parts' CRC32C values
            values = b"".join(base64.b64decode(b64_crc32c(p)) for p in parts)
            assert head["ChecksumCRC32C"] == f"{b64_crc32c(values)}-{len(parts)}"
    elif isinstance(store, GCSStorage):
        blob = store._bucket.get_blob(store._name(KEY))
        assert blob is not None
        assert blob.crc32c == b64_crc32c(data)
    else:
        pytest.skip("a file system keeps no checksum of its own")


@pytest.mark.parametrize("size", [1000, 12 * MiB + 123], ids=["single", "multipart"])
def test_s3_refuses_bytes_that_do_not_match_their_checksum(
    seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    store = S3Storage("redis-dr-test", f"{uuid.uuid4().hex}/", endpoint=seaweedfs.endpoint, part_size=PART)
    monkeypatch.setattr("redis_dr.storage.s3._crc32c", lambda data: b64_crc32c(data + b"!"))
    with pytest.raises(TransientError, match="did not match their checksum"):
        store.put(KEY, chunked(pattern(size)))
    assert list(store.list()) == []
    assert store._client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix).get("Uploads", []) == []
