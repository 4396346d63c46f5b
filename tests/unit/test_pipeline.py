"""Streaming stages: round trips, truncation, encryption keys, error propagation."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator

import pyrage
import pytest

from redis_dr.errors import ConfigError, IntegrityError
from redis_dr.pipeline import (
    Compression,
    HeaderTap,
    Tally,
    WrongIdentityError,
    compress,
    decompress,
    decrypt,
    encrypt,
    parse_identities,
    prefetch,
)


def sample_chunks() -> list[bytes]:
    """Mixed compressible and random chunks of uneven sizes."""
    return [os.urandom(70_000) + b"session" * 9_000 for _ in range(12)] + [b"", b"tail"]


@pytest.mark.parametrize("codec", list(Compression))
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "age"])
def test_round_trip_restores_every_byte(codec: Compression, encrypted: bool) -> None:
    identity = pyrage.x25519.Identity.generate()
    chunks = sample_chunks()
    raw, stored = Tally(), Tally()
    data = compress(raw.tap(prefetch(chunks)), codec)
    if encrypted:
        data = encrypt(data, [str(identity.to_public())])
    blob = b"".join(stored.tap(data))

    back = decompress(decrypt([blob], [identity]) if encrypted else [blob], codec)
    restored = b"".join(back)

    assert restored == b"".join(chunks)
    assert raw.sha256 == hashlib.sha256(restored).hexdigest()
    assert stored.size == len(blob)
    if codec is not Compression.NONE:
        assert stored.size < raw.size


def test_gzip_output_is_readable_by_the_gzip_module() -> None:
    import gzip

    chunks = sample_chunks()
    assert gzip.decompress(b"".join(compress(chunks, Compression.GZIP))) == b"".join(chunks)


@pytest.mark.parametrize("codec", [Compression.ZSTD, Compression.GZIP])
def test_truncated_stream_is_an_integrity_error(codec: Compression) -> None:
    blob = b"".join(compress(sample_chunks(), codec))
    with pytest.raises(IntegrityError, match="ends early"):
        b"".join(decompress([blob[: len(blob) // 2]], codec))


def test_wrong_identity_cannot_decrypt() -> None:
    right, wrong = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    blob = b"".join(encrypt([b"secret sessions"], [str(right.to_public())]))
    with pytest.raises(WrongIdentityError, match="none of the age identities given is one of its recipients"):
        b"".join(decrypt([blob], [wrong]))


def test_malformed_recipient_and_identity_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not an age recipient"):
        list(encrypt([b"x"], ["age1notakey"]))
    with pytest.raises(ConfigError, match="AGE-SECRET-KEY"):
        parse_identities("# only a comment\n")


def test_identity_file_with_comments_parses() -> None:
    identity = pyrage.x25519.Identity.generate()
    text = f"# created: today\n# public key: {identity.to_public()}\n{identity}\n"
    assert [str(i) for i in parse_identities(text)] == [str(identity)]


def test_source_errors_reach_the_consumer_through_threads() -> None:
    class Boom(Exception):
        pass

    def failing() -> Iterator[bytes]:
        yield b"x" * 1000
        raise Boom("cut")

    recipient = str(pyrage.x25519.Identity.generate().to_public())
    with pytest.raises(Boom):
        b"".join(encrypt(compress(prefetch(failing()), Compression.ZSTD), [recipient]))


def test_consumer_stopping_early_ends_the_producer_thread() -> None:
    producers: list[threading.Thread] = []

    def endless() -> Iterator[bytes]:
        while True:
            producers.append(threading.current_thread())
            yield b"x" * 1024

    stream = prefetch(endless(), depth=2)
    next(stream)
    stream.close()
    assert len(producers) < 10  # bounded read-ahead
    assert producers[0] is not threading.current_thread()
    assert not producers[0].is_alive()  # and the thread that read ahead has ended


def test_header_tap_checks_the_header_before_the_rest_flows() -> None:
    seen: list[bytes] = []

    def check(header: bytes) -> None:
        seen.append(header)
        if not header.startswith(b"REDIS"):
            raise IntegrityError("not an RDB")

    tap = HeaderTap(9, check=check)
    assert b"".join(tap.tap([b"RED", b"IS0010rest"])) == b"REDIS0010rest"
    assert seen == [b"REDIS0010"]
    with pytest.raises(IntegrityError):
        list(HeaderTap(9, check=check).tap([b"GARBAGE-HEADER"]))
