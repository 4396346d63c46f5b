"""Errors at the edges of the core: what a wrong address, database or TLS setting and a damaged
encrypted stream become (one clear, correctly classified error each)."""

from __future__ import annotations

import os
from pathlib import Path

import pyrage
import pytest

from redis_dr.errors import ConfigError, IntegrityError
from redis_dr.pipeline import WrongIdentityError, decrypt, encrypt
from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.info import read_server_facts
from redis_dr.sandbox.redis_server import RedisServer

pytestmark = pytest.mark.integration


def facts_of(url: str) -> None:
    read_server_facts(open_client(RedisEndpoint.from_url(url, env={})))


def test_database_out_of_range_is_bad_input(redis_server: RedisServer) -> None:
    with pytest.raises(ConfigError, match=rf"^Redis at 127.0.0.1:{redis_server.port} has no database 16: "):
        facts_of(f"redis://127.0.0.1:{redis_server.port}/16")


def test_missing_unix_socket_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^there is no Redis socket .*/nope.sock: check the unix:// path"):
        facts_of(f"unix://{tmp_path}/nope.sock")


def test_rediss_against_a_plain_server_is_bad_input_naming_tls(redis_server: RedisServer) -> None:
    with pytest.raises(ConfigError, match="answers without TLS: TLS is probably the mismatch"):
        facts_of(f"rediss://127.0.0.1:{redis_server.port}/0")


@pytest.fixture(scope="module")
def sealed() -> tuple[object, bytes]:
    identity = pyrage.x25519.Identity.generate()
    return identity, b"".join(encrypt([os.urandom(300_000)], [str(identity.to_public())]))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda blob: blob[: len(blob) // 2], "age payload is damaged or truncated"),
        (lambda blob: blob[:-1], "age payload is damaged or truncated"),
        (
            lambda blob: blob[:150_000] + bytes([blob[150_000] ^ 1]) + blob[150_001:],
            "age payload is damaged or truncated",
        ),
        (lambda blob: blob[:20] + bytes([blob[20] ^ 1]) + blob[21:], "age header is damaged"),
        (lambda blob: blob[:30], "age header is damaged"),
    ],
)
def test_damaged_age_stream_is_an_integrity_error(sealed: tuple[object, bytes], damage, message: str) -> None:
    identity, blob = sealed
    with pytest.raises(IntegrityError, match=message) as caught:
        b"".join(decrypt([damage(blob)], [identity]))
    assert type(caught.value) is IntegrityError


def test_wrong_key_is_told_apart_from_damage(sealed: tuple[object, bytes]) -> None:
    _, blob = sealed
    with pytest.raises(WrongIdentityError, match="REDIS_DR_AGE_IDENTITY the right key"):
        b"".join(decrypt([blob], [pyrage.x25519.Identity.generate()]))
