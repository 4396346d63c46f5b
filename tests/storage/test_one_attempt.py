"""Backends make one attempt per request: the Prefect tasks are the only retry layer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from redis_dr.errors import TransientError
from redis_dr.storage.base import MAX_CALL_SECONDS, REQUEST_SECONDS, Storage
from redis_dr.storage.gcs import GCSStorage
from redis_dr.storage.s3 import S3Storage
from tests.storage.dead_endpoint import DeadEndpoint, Mode


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that sign requests, and the environment's own retry settings turned up."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "redisdr-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "5")  # the client's own setting must win
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def s3_at(url: str) -> Storage:
    return S3Storage("redis-dr-test", "p/", endpoint=url, region="us-east-1")


def gcs_at(url: str) -> Storage:
    return GCSStorage("redis-dr-test", "p/", endpoint=url)


@pytest.fixture(params=["hangup", "503"])
def dead(request: pytest.FixtureRequest) -> Iterator[DeadEndpoint]:
    with DeadEndpoint(request.param) as endpoint:
        yield endpoint


CALLS: dict[str, Callable[[Storage], object]] = {
    "stat": lambda s: s.stat("inst/20260101T000000Z/manifest.json"),
    "get": lambda s: s.get("inst/20260101T000000Z/manifest.json"),
    "put_bytes": lambda s: s.put_bytes("inst/20260101T000000Z/manifest.json", b"{}"),
    "list": lambda s: list(s.list("inst/")),
    "list_dirs": lambda s: list(s.list_dirs("inst/")),
    "delete": lambda s: s.delete("inst/20260101T000000Z/manifest.json"),
}


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("backend", [s3_at, gcs_at], ids=["s3", "gcs"])
@pytest.mark.parametrize("call", list(CALLS), ids=list(CALLS))
def test_one_connection_per_failed_call(dead: DeadEndpoint, backend: Callable[[str], Storage], call: str) -> None:
    mode: Mode = dead.mode
    store = backend(dead.url)
    try:
        with pytest.raises(TransientError, match="cannot reach|connection|temporarily|503|navailable"):
            CALLS[call](store)
    finally:
        store.close()
    assert dead.connections() == 1, f"{call} against an endpoint that answers {mode} was retried"


def test_the_longest_call_is_published() -> None:
    assert REQUEST_SECONDS == 70.0  # connect 10 s + read 60 s
    assert MAX_CALL_SECONDS >= 2 * REQUEST_SECONDS  # a stat may HEAD the key, then the bucket
