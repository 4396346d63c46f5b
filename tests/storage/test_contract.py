"""One contract suite, run against every backend on a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest

from redis_dr.errors import AccessDeniedError, AlreadyExistsError, NotFoundError, TransientError
from redis_dr.sandbox.ports import free_port
from redis_dr.storage import Storage, open_storage
from redis_dr.storage.base import MiB
from redis_dr.storage.location import StorageLocation
from redis_dr.storage.s3 import S3Storage
from tests.servers.seaweedfs import SeaweedFS

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
        assert [n for _, _, files in os.walk(root) for n in files] == []


def test_missing_bucket(storage_url: str) -> None:
    url, name = missing_bucket_url(storage_url)
    store = open_storage(url, part_size=PART)
    for call in (lambda: store.get("x"), lambda: store.stat("x")):
        with pytest.raises(NotFoundError, match=name):
            call()
    if url.startswith("file://"):  # a directory not created yet lists empty; put creates it
        assert list(store.list()) == []
    else:
        with pytest.raises(NotFoundError, match=name):
            list(store.list())
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
    store = S3Storage("redis-dr-test", endpoint=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    with pytest.raises(TransientError, match="connection"):
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
