"""The scanner's key sampler against real redis-server 7.0 dumps and hand-built RDBs.

Every sampled key must be what the server says of it (database, TYPE, PEXPIRETIME),
whatever the chunking; the counts must not change; samples must spread over the
file and stay about as many as asked. Key names in every RDB string encoding
(plain, integer, LZF) are read back to their bytes.
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Iterator

import pytest

from redis_dr.redis.info import read_server_facts
from redis_dr.redis.lzf import lzf_decompress
from redis_dr.redis.rdb_sample import SampledKey, decode_string
from redis_dr.redis.rdb_scan import MAX_SAMPLED_KEY, RdbCounter
from redis_dr.sandbox.redis_server import RedisServer
from tests.redis.test_rdb_scan import BIG, chunked, fill, key, later_formats, rdb, select, string

pytestmark = pytest.mark.integration

#: Compressible key names over 20 bytes: Redis saves them LZF-compressed.
LZF_NAMES = [b"lzf-name:" + b"session-" * 12 + bytes([i]) for i in range(3)]


def sample(data: bytes, size: int, count: int, *, hint: bool = False) -> RdbCounter:
    """Scan `data` in chunks of `size` sampling `count` keys; the bytes pass through unchanged."""
    counter = RdbCounter(sample=count, size=len(data) if hint else None)
    assert b"".join(counter.tap(chunked(data, size))) == data
    return counter


def truth(server: RedisServer) -> set[SampledKey]:
    """Every key of every database as the server sees it: TYPE and PEXPIRETIME."""
    keys = set()
    for db in read_server_facts(server.client()).keyspace:
        client = server.client(db=db)
        names = list(client.scan_iter(count=1000))
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.type(name)
            pipe.execute_command("PEXPIRETIME", name)  # type: ignore[no-untyped-call]
        replies = pipe.execute()
        for name, kind, expire in zip(names, replies[::2], replies[1::2], strict=True):
            keys.add(
                SampledKey(db=db, key=name, type=kind.decode(), expire_ms=None if expire < 0 else expire)
            )
    return keys


@pytest.fixture(scope="module")
def dump() -> Iterator[dict[str, object]]:
    """A SAVEd dump of every type and encoding (test_rdb_scan's fill), LZF- and integer-named keys
    with expiries in several databases; what the server says it holds."""
    with RedisServer({"rdbcompression": "yes", "list-compress-depth": "1"}) as server:
        fill(server)
        c0, c7 = server.client(), server.client(db=7)
        for i, name in enumerate(LZF_NAMES):
            c0.set(name, i, px=5_000_000 + i)
        c0.hset(LZF_NAMES[0] + b":hash", "f", "v")
        c7.set("-123", "integer name, int8")
        c7.set("4567", "int16", ex=500)
        c7.rpush("2000000000", "int32")
        c7.zadd("12", {"a": 1})
        c7.sadd("set:ttl", "m")
        c7.expire("set:ttl", 800)
        c0.save()
        data = (server.data_dir / "dump.rdb").read_bytes()
        yield {"data": data, "truth": truth(server), "keyspace": read_server_facts(c0).keyspace}


def every_key(data: bytes, monkeypatch: pytest.MonkeyPatch) -> RdbCounter:
    """Sample every key: a grid point at every byte, fed byte by byte."""
    monkeypatch.setattr("redis_dr.redis.rdb_scan._FIRST_STRIDE", 1)
    return sample(data, 1, 1 << 30)


def test_every_sampled_key_is_what_the_server_says(
    dump: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, expected = dump["data"], dump["truth"]
    assert isinstance(data, bytes) and isinstance(expected, set)
    assert not any(name in data for name in LZF_NAMES)  # saved compressed: only the sampler's LZF reads them
    assert b"\xc0\x85" in data and b"\xc1\xd7\x11" in data  # -123 and 4567 as integer-encoded names
    counter = every_key(data, monkeypatch)
    samples = counter.samples()
    assert len(samples) == len(expected)
    assert set(samples) == expected
    assert {s.type for s in samples} == {"string", "list", "set", "zset", "hash", "stream"}
    assert counter.counts() == dump["keyspace"]


@pytest.mark.parametrize("size", [1, 7, 4096, BIG, 1 << 30])
@pytest.mark.parametrize("hint", [False, True])
def test_chunking_changes_neither_the_counts_nor_the_truth_of_samples(
    dump: dict[str, object], size: int, hint: bool
) -> None:
    data = dump["data"]
    assert isinstance(data, bytes)
    counter = sample(data, size, 20, hint=hint)
    assert counter.counts() == dump["keyspace"]
    samples = counter.samples()
    assert samples and set(samples) <= dump["truth"]  # type: ignore[operator]
    assert {s.db for s in samples} == {0, 3, 7, 15}  # the first key of every database at least


def test_random_chunk_boundaries(dump: dict[str, object]) -> None:
    data = dump["data"]
    assert isinstance(data, bytes)
    rng = random.Random(2)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(data)), 500))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        counter = RdbCounter(sample=30)
        assert b"".join(counter.tap(pieces)) == data
        assert counter.counts() == dump["keyspace"]
        assert set(counter.samples()) <= dump["truth"]  # type: ignore[operator]


@pytest.fixture(scope="module")
def many_keys() -> Iterator[tuple[bytes, set[SampledKey]]]:
    """A dump of 20,000 small keys with sequential names, a tenth of them expiring."""
    with RedisServer() as server:
        client = server.client()
        pipe = client.pipeline(transaction=False)
        for i in range(20_000):
            pipe.set(f"k:{i:05d}", "v" * (i % 40), px=9_000_000 + i if i % 10 == 0 else None)
        pipe.execute()
        client.save()
        yield (server.data_dir / "dump.rdb").read_bytes(), truth(server)


@pytest.mark.parametrize("size", [7, 4096, BIG])
@pytest.mark.parametrize("hint", [False, True])
def test_samples_spread_over_the_file_and_stay_about_as_many_as_asked(
    many_keys: tuple[bytes, set[SampledKey]], size: int, hint: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the size, a grid of N points; without, a finer grid at first (here, for a small file),
    coarsened as the samples reach 2N."""
    data, expected = many_keys
    monkeypatch.setattr("redis_dr.redis.rdb_scan._FIRST_STRIDE", 256)
    counter = sample(data, size, 50, hint=hint)
    samples = counter.samples()
    assert set(samples) <= expected
    assert counter.counts() is not None and counter.counts()[0].key_count == 20_000  # type: ignore[index]
    assert 25 <= len(samples) <= (51 if hint else 100)
    assert len({s.key for s in samples}) == len(samples)
    offsets = [data.index(s.key) for s in samples]  # plain names: where each key lies in the dump
    assert offsets == sorted(offsets)  # in stream order
    assert offsets[0] < 300 and offsets[-1] > len(data) - 4 * len(data) // 50
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert max(gaps) <= 4 * len(data) // 50  # no stretch of the file left unsampled
    assert any(s.expire_ms is not None for s in samples) and any(s.expire_ms is None for s in samples)


def test_not_sampling_records_nothing(dump: dict[str, object]) -> None:
    data = dump["data"]
    assert isinstance(data, bytes)
    counter = sample(data, BIG, 0)
    assert counter.samples() == []
    assert counter.counts() == dump["keyspace"]


@pytest.mark.parametrize("size", [1, 7, BIG])
def test_later_formats_and_encodings_built_by_hand(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Types 7.0 cannot write (modules, 7.2/7.4 types, pre-7 encodings), seconds expiries, integer
    and LZF names: each sampled with its TYPE name and absolute expiry."""
    data, expected_counts = later_formats()
    monkeypatch.setattr("redis_dr.redis.rdb_scan._FIRST_STRIDE", 1)
    counter = sample(data, size, 1 << 30)
    assert counter.counts() == expected_counts
    samples = {(s.db, s.key): (s.type, s.expire_ms) for s in counter.samples()}
    if size == 1:  # every key: a grid point at every byte
        assert len(samples) == sum(stats.key_count for stats in expected_counts.values())
    for name, kind, expire in [
        (b"module", "module", 1 << 41),
        (b"set:listpack", "set", None),
        (b"stream:v3", "stream", None),
        (b"hash:ttl", "hash", None),  # field TTLs, no key TTL
        (b"hash:lp:ttl", "hash", 1 << 41),
        (b"expire:seconds", "string", 2_000_000_000_000),
        (b"12345", "string", None),  # an integer-encoded name
        (b"lzf:14bit", "string", 1 << 41),
    ]:
        if size == 1 or (0, name) in samples:
            assert samples[(0, name)] == (kind, expire), name
    for name, kind in [(b"zipmap", "hash"), (b"ziplist", "list"), (b"intset", "set"), (b"zset:text", "zset"),
                       (b"quicklist", "list"), (b"quicklist2", "list"), (b"list:linked", "list")]:  # fmt: skip
        if size == 1 or (5, name) in samples:
            assert samples[(5, name)] == (kind, None), name


def lzf_name(text: bytes, compressed: bytes) -> bytes:
    return b"\xc3" + bytes([len(compressed), len(text)]) + compressed


@pytest.mark.parametrize("size", [1, 3, BIG])
def test_long_and_undecodable_names_are_passed_over_and_the_next_key_taken(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_name = random.Random(3).randbytes(MAX_SAMPLED_KEY + 1)
    bad_lzf = b"\x00\xc3" + bytes([2, 9]) + b"\x05x" + string(b"v")  # a literal run past its input
    body = select(0, 4, 0) + key(0, long_name, string(b"v")) + bad_lzf + key(0, b"after", string(b"w"))
    body += key(0, b"x" * (MAX_SAMPLED_KEY - 2), string(b"v"))  # the longest name sampled (2-byte length)
    data = rdb(body)
    counter = RdbCounter(sample=1)  # armed for the first key of db 0, and at the start
    assert b"".join(counter.tap(chunked(data, size))) == data
    assert counter.counts() is not None and counter.counts()[0].key_count == 4  # type: ignore[index]
    assert next(s.key for s in counter.samples()) == b"after"
    monkeypatch.setattr("redis_dr.redis.rdb_scan._FIRST_STRIDE", 1)
    everything = sample(data, 1, 1 << 30).samples()
    assert [s.key for s in everything] == [b"after", b"x" * (MAX_SAMPLED_KEY - 2)]


def test_a_scan_that_stops_keeps_the_samples_before_the_stop(dump: dict[str, object]) -> None:
    data = dump["data"]
    assert isinstance(data, bytes)
    counter = sample(data[: len(data) // 2], 4096, 20)
    assert counter.counts() is None
    assert counter.samples() and set(counter.samples()) <= dump["truth"]  # type: ignore[operator]


def test_decode_string_reads_every_encoding() -> None:
    assert decode_string(string(b"plain")) == b"plain"
    assert decode_string(string(b"y" * 100)) == b"y" * 100  # a 14-bit length
    assert decode_string(b"\x80" + struct.pack(">I", 3) + b"abc") == b"abc"  # a 32-bit length
    assert decode_string(b"\xc0\x85") == b"-123"
    assert decode_string(b"\xc1" + struct.pack("<h", -30_000)) == b"-30000"
    assert decode_string(b"\xc2" + struct.pack("<i", 2_000_000_000)) == b"2000000000"
    # "abcabcabcabc": a literal run of 3, then a back reference of 9 bytes at distance 3 (overlapping)
    assert decode_string(lzf_name(b"abc" * 4, b"\x02abc\xe0\x00\x02")) == b"abc" * 4
    with pytest.raises(ValueError, match="LZF data decompresses to 12 bytes, 13 expected"):
        decode_string(b"\xc3\x07\x0d\x02abc\xe0\x00\x02")
    with pytest.raises(ValueError, match="unknown string encoding 5"):
        decode_string(b"\xc5")


def test_lzf_of_real_values(dump: dict[str, object]) -> None:
    """The value of `lzf` (b"session-data " * 400) as redis-server compressed it."""
    data = dump["data"]
    assert isinstance(data, bytes)
    pos = data.index(b"\x03lzf\xc3") + 5
    lengths = []
    for _ in range(2):  # compressed and uncompressed length: 6- or 14-bit here
        if data[pos] < 0x40:
            lengths.append(data[pos])
            pos += 1
        else:
            lengths.append(((data[pos] & 0x3F) << 8) | data[pos + 1])
            pos += 2
    compressed, size = lengths
    assert size == 5200 and compressed < size // 10
    assert lzf_decompress(data[pos : pos + compressed], size) == b"session-data " * 400
    with pytest.raises(ValueError, match="before the start of the output"):
        lzf_decompress(b"\xe0\x05\x07", 9)


def test_samples_survive_a_json_round_trip() -> None:
    sampled = SampledKey(db=3, key=b"\xff\x00 not utf-8", type="hash", expire_ms=1)
    assert SampledKey.model_validate_json(sampled.model_dump_json()) == sampled
