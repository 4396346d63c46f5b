"""Parsing storage URLs (no servers)."""

from __future__ import annotations

import pytest

from redis_dr.errors import ConfigError, TransientError
from redis_dr.sandbox.ports import free_port
from redis_dr.storage.base import check_key, check_prefix
from redis_dr.storage.location import StorageLocation, parse_size, redact_url
from redis_dr.storage.registry import open_storage


@pytest.mark.parametrize(
    ("url", "scheme", "bucket_or_path", "prefix", "options"),
    [
        ("file:///var/backups/redis", "file", "/var/backups/redis", "", {}),
        ("file:///var/backups/redis/", "file", "/var/backups/redis", "", {}),
        ("file://localhost/srv//x", "file", "/srv/x", "", {}),
        ("file:///srv/with%20space", "file", "/srv/with space", "", {}),
        ("s3://bucket", "s3", "bucket", "", {}),
        ("s3://bucket/", "s3", "bucket", "", {}),
        ("s3://bucket/a/b/", "s3", "bucket", "a/b/", {}),
        ("s3://bucket//a//b", "s3", "bucket", "a/b/", {}),
        (
            "s3://my.bucket/p?region=eu-west-1&endpoint=http://127.0.0.1:9000&storage_class=GLACIER",
            "s3",
            "my.bucket",
            "p/",
            {"region": "eu-west-1", "endpoint": "http://127.0.0.1:9000", "storage_class": "GLACIER"},
        ),
        (
            "gs://b-1/prod/redis?endpoint=http://127.0.0.1:4443",
            "gs",
            "b-1",
            "prod/redis/",
            {"endpoint": "http://127.0.0.1:4443"},
        ),
        ("gs://b_1?project=p&part_size=32MiB", "gs", "b_1", "", {"project": "p", "part_size": "32MiB"}),
    ],
)
def test_parse(url: str, scheme: str, bucket_or_path: str, prefix: str, options: dict[str, str]) -> None:
    loc = StorageLocation.parse(url)
    assert (loc.scheme, loc.bucket_or_path, loc.prefix, dict(loc.options)) == (
        scheme,
        bucket_or_path,
        prefix,
        options,
    )
    assert StorageLocation.parse(loc.url) == loc  # canonical URL round-trips


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "unsupported storage URL"),
        ("/var/backups", "unsupported storage URL"),
        ("ftp://host/x", "unsupported storage URL"),
        ("file://relative/path", "absolute path"),
        ("file:relative", "absolute path"),
        ("file:///a/../b", "'..'"),
        ("s3://", "no bucket"),
        ("s3:///prefix", "no bucket"),
        ("gs://", "no bucket"),
        ("s3://b", "not a valid bucket"),
        ("s3://bad bucket/x", "not a valid bucket"),
        ("s3://bucket/a/../b", "'..'"),
        ("s3://AKIA:secret@bucket/x", "contains credentials"),
        ("s3://bucket/x?regoin=eu-west-1", "unknown option 'regoin'"),
        ("s3://bucket/x?project=p", "unknown option 'project'"),
        ("file:///x?region=eu", r"unknown option 'region' \(allowed: none\)"),
        ("s3://bucket/x?region=a&region=b", "given twice"),
        ("s3://bucket/x?region=", "has no value"),
        ("s3://bucket/x?endpoint=127.0.0.1:9000", "endpoint must look like"),
        ("s3://bucket/x?part_size=lots", "invalid part_size"),
        ("s3://bucket/x#frag", "fragment"),
    ],
)
def test_parse_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        StorageLocation.parse(url)
    assert "\n" not in str(info.value)


def test_errors_never_show_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        StorageLocation.parse("s3://AKIAXXXX:hunter2@bucket/x")
    assert "hunter2" not in str(info.value) and "AKIAXXXX" not in str(info.value)


def test_redact_url() -> None:
    assert redact_url("s3://user:pw@bucket/p?region=x") == "s3://bucket/p?region=x"
    assert redact_url("s3://bucket/p?secret_key=abc&x=1") == "s3://bucket/p?secret_key=%2A%2A%2A&x=1"
    assert redact_url("file:///var/x") == "file:///var/x"


@pytest.mark.parametrize(
    ("text", "size"),
    [("5242880", 5 << 20), ("5MiB", 5 << 20), ("5m", 5 << 20), ("512KiB", 512 << 10), ("1G", 1 << 30)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/../b", "..", "./a"])
def test_invalid_keys(key: str) -> None:
    with pytest.raises(ConfigError, match="invalid storage key"):
        check_key(key)


def test_valid_keys_and_prefixes() -> None:
    assert check_key("inst/20260101T000000Z/manifest.json") == "inst/20260101T000000Z/manifest.json"
    assert [check_prefix(p) for p in ("", "inst/", "inst/2026")] == ["", "inst/", "inst/2026"]
    with pytest.raises(ConfigError):
        check_prefix("/abs")


def test_open_storage_rejects_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="5 MiB minimum"):
        open_storage("s3://bucket/x?part_size=1MiB")
    with pytest.raises(ConfigError, match="multiple of 256 KiB"):
        open_storage("gs://bucket/x?part_size=1000&endpoint=http://127.0.0.1:1")


def test_open_storage_file(tmp_path: object) -> None:
    store = open_storage(f"file://{tmp_path}")
    assert store.url == f"file://{tmp_path}"


def test_credentials_in_the_endpoint_are_refused_without_being_shown() -> None:
    url = "s3://bucket/p?endpoint=http://proxyuser:Zproxysecret@127.0.0.1:9000&region=us-east-1"
    with pytest.raises(ConfigError, match="endpoint holds credentials") as raised:
        StorageLocation.parse(url)
    assert "Zproxysecret" not in str(raised.value) and "proxyuser" not in str(raised.value)
    assert "Zproxysecret" not in redact_url(url)


def test_a_control_character_in_a_storage_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="control character"):
        StorageLocation.parse("file:///var/backups/odd\ndir")


@pytest.mark.parametrize(
    ("url", "service"),
    [("s3://bucket/p?region=us-east-1&endpoint=", "S3"), ("gs://bucket/p?endpoint=", "GCS")],
)
def test_an_endpoint_that_does_not_answer_is_named_in_one_short_line(
    url: str, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    storage = open_storage(url + endpoint)
    with pytest.raises(TransientError) as raised:
        storage.stat("sessions/20261125T090000Z/manifest.json")
    assert str(raised.value).startswith(f"cannot reach {service} at {endpoint} (for ")
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 200
