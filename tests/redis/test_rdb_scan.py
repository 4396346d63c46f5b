"""The streaming RDB scanner against real redis-server dumps, and hand-built RDBs for later formats.

Real dumps (redis-server 7.0) hold every type and encoding that server writes: raw,
integer and LZF strings, listpack and quicklist lists (with LZF-compressed nodes),
intset and hash-table sets, listpack and skiplist sorted sets, listpack and
hash-table hashes, streams with consumer groups and pending entries, a function
library, LRU and LFU opcodes, keys with and without TTLs in databases 0, 3 and 15.
Their counts must equal what the server reports, whatever the chunking.

Formats 7.0 cannot write (modules, 7.2/7.4 types, slot info, pre-7 encodings) are
built by hand from the layouts in Redis's src/rdb.c, byte for byte.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.info import KeyspaceStats, read_server_facts
from redis_dr.redis.rdb_scan import RdbCounter, count_rdb
from redis_dr.redis.replication import replication_snapshot
from redis_dr.sandbox.redis_server import RedisServer

pytestmark = pytest.mark.integration

BIG = 128 << 10


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def scan(data: bytes, size: int) -> RdbCounter:
    """Scan `data` in chunks of `size`; the tap must hand back exactly the same bytes."""
    counter = RdbCounter()
    out = b"".join(counter.tap(chunked(data, size)))
    assert out == data
    return counter


def fill(server: RedisServer) -> None:
    """One or more keys of every type and encoding redis-server 7.0 writes, in dbs 0, 3 and 15."""
    rng = random.Random(6)
    c = server.client()
    p = c.pipeline(transaction=False)
    # strings: raw, integer-encoded (int8/16/32 and a 64-bit one saved as text), LZF, large
    p.set("raw", "hello")
    for i, n in enumerate((7, -100, 30_000, -2_000_000_000, 1 << 40)):
        p.set(f"int:{i}", n)
    p.set("12345", "a key name saved integer-encoded")
    p.set("lzf", b"session-data " * 400, ex=3600)
    p.set("random:300k", rng.randbytes(300_000))
    p.set("lzf:1m", b"x" * 1_000_000, px=7_200_000)
    p.set("len14", rng.randbytes(5000))
    # lists: one listpack node, many (compressed) quicklist nodes, a node holding one big element
    p.rpush("list:small", "a", "b", 3)
    p.rpush("list:big", *[f"element-{i}-" * 5 for i in range(5000)])
    p.rpush("list:fat", rng.randbytes(20_000), "tail")
    p.expire("list:big", 600)
    # sets: intset, hash table (7.0 has no listpack sets), big hash table
    p.sadd("set:int", *range(20))
    p.sadd("set:str", "a", "b", "c")
    p.sadd("set:big", *[f"member-{i}" for i in range(3000)])
    # sorted sets: listpack, skiplist (many members; a long member)
    p.zadd("zset:small", {"a": 1, "b": 2.5})
    p.zadd("zset:big", {f"m{i}": i / 3 for i in range(2000)})
    p.zadd("zset:long", {"y" * 100: float("inf"), "z": float("-inf")})
    # hashes: listpack, hash table (many fields; a long value)
    p.hset("hash:small", mapping={"f": "v", "n": 1})
    p.hset("hash:big", mapping={f"field-{i}": rng.randbytes(20) for i in range(3000)})
    p.hset("hash:long", mapping={"f": "v" * 100})
    p.expire("hash:big", 9999)
    p.execute()
    # streams: many listpacks, consumer groups, pending entries, consumers
    for i in range(3000):
        p.xadd("stream", {"event": f"e{i}", "payload": "p" * (i % 50)})
    p.execute()
    c.xgroup_create("stream", "workers", id="0")
    c.xgroup_create("stream", "audit", id="$")
    c.xreadgroup("workers", "alice", {"stream": ">"}, count=25)
    c.xreadgroup("workers", "bob", {"stream": ">"}, count=10)
    first = c.execute_command("XRANGE", "stream", "-", "+", "COUNT", 5)  # type: ignore[no-untyped-call]
    c.execute_command("XACK", "stream", "workers", *[entry[0] for entry in first])  # type: ignore[no-untyped-call]
    c.xgroup_create("stream:empty", "g", id="$", mkstream=True)
    c.xadd("stream:small", {"k": "v"})
    c.function_load(
        "#!lua name=scanlib\nredis.register_function('echo1', function(keys, args) return args[1] end)"
    )
    for db, ttl_keys, plain_keys in ((3, 4, 2), (15, 0, 70)):
        other = server.client(db=db)
        for i in range(ttl_keys):
            other.set(f"t{i}", i, ex=1000 + i)
        for i in range(plain_keys):
            other.hset(f"h{i}", "k", i)


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """SAVEd dumps of one filled server under three eviction policies, and what INFO said."""
    config = {"rdbcompression": "yes", "list-compress-depth": "1", "repl-diskless-sync-delay": "0"}
    with RedisServer(config) as server:
        fill(server)
        client = server.client()
        result: dict[str, object] = {"keyspace": read_server_facts(client).keyspace, "server": server}
        result["encodings"] = {client.object("encoding", key) for key in client.scan_iter(count=1000)}
        result["dbsize"] = {db: server.client(db=db).dbsize() for db in (0, 3, 15)}
        for policy in ("noeviction", "allkeys-lru", "allkeys-lfu"):
            client.config_set("maxmemory-policy", policy)
            client.save()
            result[policy] = (server.data_dir / "dump.rdb").read_bytes()
        client.config_set("maxmemory-policy", "noeviction")
        yield result


def test_counts_equal_what_the_server_says(dumps: dict[str, object]) -> None:
    keyspace = dumps["keyspace"]
    assert isinstance(keyspace, dict) and set(keyspace) == {0, 3, 15}
    assert {db: stats.key_count for db, stats in keyspace.items()} == dumps["dbsize"]
    counter = scan(dumps["noeviction"], BIG)  # type: ignore[arg-type]
    assert counter.unknown_reason is None and counter.complete
    assert counter.counts() == keyspace
    assert counter.resizedb_hints() == keyspace
    assert counter.rdb_version == 10
    assert counter.checksum is not None and counter.checksum != "0" * 16
    assert counter.trailing_bytes == 0


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu"])
def test_idle_and_frequency_opcodes_are_skipped(dumps: dict[str, object], policy: str) -> None:
    plain, data = dumps["noeviction"], dumps[policy]
    assert isinstance(plain, bytes) and isinstance(data, bytes)
    keys = sum(stats.key_count for stats in dumps["keyspace"].values())  # type: ignore[attr-defined]
    assert len(data) - len(plain) >= 2 * keys - 16  # an opcode and at least one byte per key
    assert scan(data, BIG).counts() == dumps["keyspace"]


@pytest.mark.parametrize("size", [1, 7, 4096, BIG, 1 << 30])
def test_chunk_size_does_not_change_the_result(dumps: dict[str, object], size: int) -> None:
    data = dumps["allkeys-lfu"]
    assert isinstance(data, bytes)
    counter = scan(data, size)
    assert counter.counts() == dumps["keyspace"]
    assert counter.checksum == scan(data, BIG).checksum


def test_random_chunk_boundaries(dumps: dict[str, object]) -> None:
    data = dumps["noeviction"]
    assert isinstance(data, bytes)
    rng = random.Random(1)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(data)), 300))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        counter = RdbCounter()
        assert b"".join(counter.tap(pieces)) == data
        assert counter.counts() == dumps["keyspace"]


def test_the_dump_holds_every_encoding_of_redis_7_0(dumps: dict[str, object]) -> None:
    expected = {b"int", b"embstr", b"raw", b"listpack", b"quicklist", b"intset", b"hashtable", b"skiplist"}
    assert expected | {b"stream"} <= dumps["encodings"]  # type: ignore[operator]


def test_replication_stream_through_the_tap(dumps: dict[str, object]) -> None:
    server = dumps["server"]
    assert isinstance(server, RedisServer)
    endpoint = RedisEndpoint.from_url(f"redis://127.0.0.1:{server.port}/0", env={})
    counter = RdbCounter()
    with replication_snapshot(open_client(endpoint), chunk_size=4096) as stream:
        data = b"".join(counter.tap(stream))
    assert data.startswith(b"REDIS")
    assert counter.counts() == dumps["keyspace"]
    assert counter.trailing_bytes == 0


def test_session_store() -> None:
    from cli.demo_sessions import populate_session_store

    with RedisServer() as server:
        summary = populate_session_store(server.client(), sessions=3000, seed=3)
        server.client().save()
        data = (server.data_dir / "dump.rdb").read_bytes()
        keyspace = read_server_facts(server.client()).keyspace
    counter = scan(data, BIG)
    assert counter.counts() == keyspace
    assert keyspace[0] == KeyspaceStats(keys=summary.total_keys, expires=summary.keys_with_ttl)


def test_trailing_bytes_after_the_checksum_are_counted_not_parsed(dumps: dict[str, object]) -> None:
    data = dumps["noeviction"]
    assert isinstance(data, bytes)
    marker = b"0123456789abcdef0123456789abcdef01234567"  # as `redis-cli --rdb -` leaves it
    for size in (1, 7, BIG):
        counter = scan(data + marker, size)
        assert counter.counts() == dumps["keyspace"]
        assert counter.trailing_bytes == len(marker)


@pytest.mark.parametrize("size", [1, 7, BIG])
def test_a_truncated_rdb_gives_unknown_and_passes_every_byte(dumps: dict[str, object], size: int) -> None:
    data = dumps["allkeys-lru"]
    assert isinstance(data, bytes)
    big_value = data.index(b"random:300k") + 100
    cuts = [3, 9, 60, big_value, len(data) // 2, len(data) - 9, len(data) - 8, len(data) - 1]
    for cut in cuts if size > 1 else cuts[-4:]:
        counter = scan(data[:cut], size)
        assert counter.counts() is None, cut
        assert counter.complete is False
        assert counter.unknown_reason == f"the RDB ends after {cut} bytes, before its EOF marker"
    assert scan(data[:20], BIG).resizedb_hints() == {}
    assert scan(data[: len(data) // 2], BIG).resizedb_hints()[0] == dumps["keyspace"][0]  # type: ignore[index]


def test_an_unknown_type_in_a_real_dump_gives_unknown(dumps: dict[str, object]) -> None:
    data = dumps["noeviction"]
    assert isinstance(data, bytes)
    start = data.index(b"\x05int:0")  # a key's name; its type byte is just before
    assert data[start - 1] == 0  # RDB_TYPE_STRING
    damaged = data[: start - 1] + bytes([200]) + data[start:]
    for size in (1, BIG):
        counter = scan(damaged, size)
        assert counter.counts() is None
        assert counter.unknown_reason == f"unknown RDB type 200 at byte {start - 1}"
        assert counter.rdb_version == 10


# Hand-built RDBs, following rdbSaveLen / rdbSaveRawString / rdbSaveObject in src/rdb.c.


def length(n: int, width: int = 0) -> bytes:
    """A length; `width` 4 or 8 forces the 32- or 64-bit form (loaders accept any form)."""
    if width == 0 and n < 64:
        return bytes([n])
    if width == 0 and n < 16384:
        return bytes([0x40 | n >> 8, n & 0xFF])
    if width in (0, 4) and n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def string(data: bytes, width: int = 0) -> bytes:
    return length(len(data), width) + data


def integer(n: int) -> bytes:
    """An integer-encoded string (RDB_ENC_INT8/16/32)."""
    for enc, fmt in ((0, "<b"), (1, "<h"), (2, "<i")):
        try:
            return bytes([0xC0 | enc]) + struct.pack(fmt, n)
        except struct.error:
            continue
    raise ValueError(n)


def lzf(compressed: bytes, size: int) -> bytes:
    """An LZF string as the scanner sees it: lengths, then bytes it never decompresses."""
    return b"\xc3" + length(len(compressed)) + length(size) + compressed


def key(rdb_type: int, name: bytes, value: bytes, *, expire_ms: int | None = None) -> bytes:
    prefix = b"" if expire_ms is None else b"\xfc" + struct.pack("<q", expire_ms)
    return prefix + bytes([rdb_type]) + string(name) + value


def rdb(body: bytes, version: int = 12) -> bytes:
    """Header, the aux fields every dump starts with, `body`, EOF and a zero (disabled) checksum."""
    aux = (
        b"\xfa"
        + string(b"redis-ver")
        + string(b"7.4.0")
        + b"\xfa"
        + string(b"ctime")
        + integer(1_700_000_000)
    )
    return b"REDIS%04d" % version + aux + body + b"\xff" + bytes(8)


def select(db: int, keys: int, expires: int) -> bytes:
    return b"\xfe" + length(db) + b"\xfb" + length(keys) + length(expires)


def module_fields() -> bytes:
    """Every annotated module field (sint, uint, float, double, string), then the module EOF."""
    return (
        length(1)
        + length(5)
        + length(2)
        + length(1 << 40, 8)
        + length(3)
        + bytes(4)
        + length(4)
        + bytes(8)
        + length(5)
        + string(b"module payload" * 20)
        + length(0)
    )


def stream(rdb_type: int, consumers_active_time: bool) -> bytes:
    """A stream of one listpack with one consumer group, two pending entries, one consumer."""
    v2 = rdb_type >= 19
    body = length(1) + string(bytes(16)) + string(b"listpack-bytes" * 30)
    body += b"".join(length(n) for n in (7, 1_700_000_000_000, 3))  # length, last id
    if v2:
        body += b"".join(length(n) for n in (1, 0, 0, 0, 7))  # first id, max deleted id, entries added
    body += length(1) + string(b"group") + length(1_700_000_000_000) + length(0)
    if v2:
        body += length(7)  # entries read
    body += length(2) + (bytes(16) + struct.pack("<q", 1) + length(1)) * 2  # global PEL
    body += length(1) + string(b"consumer") + struct.pack("<q", 2)
    if consumers_active_time:
        body += struct.pack("<q", 3)
    return body + length(2) + bytes(16) * 2


def later_formats() -> tuple[bytes, dict[int, KeyspaceStats]]:
    """Types and opcodes of Redis 7.2 and 7.4, modules, slot info, and the pre-7 encodings."""
    db0 = (
        b"\xf7"
        + length(0x1234_5678_9ABC)
        + length(2)
        + length(1)
        + module_fields()  # module aux
        + b"\xf5"
        + string(b"#!lua name=lib\n" * 10)  # function library
        + b"\xf6"
        + string(b"lib")
        + string(b"LUA")
        + length(1)
        + string(b"desc")
        + string(b"code")
        + b"\xf6"
        + string(b"lib2")
        + string(b"LUA")
        + length(0)
        + string(b"code")
        + select(0, 14, 5)
        + b"\xf4"
        + length(1234)
        + length(3)
        + length(1)  # slot info
        + key(7, b"module", length(0x1234_5678_9ABC) + module_fields(), expire_ms=1 << 41)
        + key(20, b"set:listpack", string(b"lp" * 10))
        + key(21, b"stream:v3", stream(21, True))
        + key(
            24,
            b"hash:ttl",
            struct.pack("<q", 1 << 41)
            + length(2)
            + length(0)
            + string(b"f")
            + string(b"v")
            + length(5)
            + string(b"g")
            + lzf(b"abc" * 30, 500),
        )
        + key(25, b"hash:lp:ttl", struct.pack("<q", 1 << 41) + string(b"lp-ex" * 20), expire_ms=1 << 41)
        + key(22, b"hash:ttl:rc", length(1) + length(1 << 41) + string(b"f") + string(b"v"))
        + key(23, b"hash:lp:rc", string(b"lp-ex-rc"))
        + b"\xfd"
        + struct.pack("<i", 2_000_000_000)
        + key(0, b"expire:seconds", integer(-5))
        + b"\xf8"
        + length(100)
        + b"\xf9\x07"
        + key(0, b"idle+freq", string(b"v"))
        + key(0, b"wide:lengths", string(b"x" * 70, 8), expire_ms=1 << 41)
        + key(0, b"lzf:14bit", lzf(b"z" * 20_000, 100_000), expire_ms=1 << 41)
        + b"\x00"
        + integer(12345)
        + integer(32_000)  # an integer-encoded key name
        + key(0, b"int32", integer(-2_000_000_000))
        + key(0, b"big", string(bytes(200_000)))
    )
    db5 = select(5, 9, 0) + b"".join(
        (
            key(9, b"zipmap", string(b"zm" * 5)),
            key(10, b"ziplist", string(b"zl" * 5)),
            key(11, b"intset", string(b"is" * 5)),
            key(12, b"zset:ziplist", string(b"zz" * 5)),
            key(13, b"hash:ziplist", string(b"hz" * 5)),
            key(14, b"quicklist", length(2) + string(b"n1") + lzf(b"n2" * 40, 300)),
            key(
                18,
                b"quicklist2",
                length(2) + length(2) + string(b"packed") + length(1) + string(b"plain" * 99),
            ),
            key(
                3,
                b"zset:text",
                length(4)
                + string(b"a")
                + bytes([3])
                + b"1.5"
                + string(b"b")
                + b"\xfd"
                + string(b"c")
                + b"\xfe"
                + string(b"d")
                + b"\xff",
            ),
            key(1, b"list:linked", length(3) + string(b"a") + integer(7) + lzf(b"q" * 9, 90)),
        )
    )
    expected = {0: KeyspaceStats(keys=14, expires=5), 5: KeyspaceStats(keys=9, expires=0)}
    return rdb(db0 + db5), expected


def legacy_body() -> bytes:
    """Types a Redis 7.0 still loads but no longer writes, in db 2 (checked against the server)."""
    zset = length(3) + string(b"a") + b"\x031.5" + string(b"b") + b"\xfe" + string(b"c") + b"\xff"
    zset2 = length(2) + string(b"x") + struct.pack("<d", 1.0) + string(b"y") + struct.pack("<d", 2.0)
    return select(2, 7, 2) + b"".join(
        (
            key(1, b"list", length(3) + string(b"a") + integer(7) + string(b"c" * 100)),
            key(2, b"set", length(2) + string(b"m1") + string(b"m2")),
            key(3, b"zset", zset),
            key(4, b"hash", length(2) + string(b"f1") + string(b"v1") + string(b"f2") + integer(300)),
            key(5, b"zset2", zset2),
            b"\xfd" + struct.pack("<i", 2_000_000_000) + key(0, b"seconds", string(b"v")),
            key(0, b"ms", string(b"w" * 80, 4), expire_ms=4_000_000_000_000),
        )
    )


@pytest.mark.parametrize("size", [1, 7, BIG])
def test_later_formats_built_by_hand(size: int) -> None:
    data, expected = later_formats()
    counter = scan(data, size)
    assert counter.unknown_reason is None
    assert counter.counts() == expected
    assert counter.resizedb_hints() == expected
    assert counter.rdb_version == 12
    assert counter.checksum == "0" * 16


@pytest.mark.parametrize("size", [1, BIG])
def test_redis_5_streams_and_quicklists_built_by_hand(size: int) -> None:
    body = select(0, 3, 1) + key(15, b"s1", stream(15, False), expire_ms=1 << 41)
    body += key(14, b"ql", length(1) + string(b"ziplist")) + key(0, b"s", string(b"v"))
    counter = scan(rdb(body, version=9), size)
    assert counter.counts() == {0: KeyspaceStats(keys=3, expires=1)}
    assert counter.rdb_version == 9


def test_hand_built_encodings_load_into_redis(tmp_path: Path) -> None:
    """The hand-built layouts are the server's own: Redis 7.0 loads them and agrees on the counts."""
    data = rdb(legacy_body(), version=9)
    (tmp_path / "dump.rdb").write_bytes(data)
    with RedisServer(data_dir=tmp_path) as server:
        keyspace = read_server_facts(server.client()).keyspace
    assert keyspace == {2: KeyspaceStats(keys=7, expires=2)}
    assert count_rdb(chunked(data, 5)).counts() == keyspace


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            key(6, b"m", length(1) + b"..."),
            "a module value in the pre-GA format (RDB type 6) cannot be skipped",
        ),
        (key(42, b"k", string(b"v")), "unknown RDB type 42"),
        (key(0, b"k", b"\x85" + bytes(10)), "unknown length encoding 0x85"),
        (key(0, b"k", b"\xc7" + bytes(10)), "unknown string encoding 7"),
        (key(7, b"m", length(99) + length(9) + bytes(10)), "unknown module field opcode 9"),
        (b"\xf7" + length(99) + length(1) + length(1) + length(0), "module aux data with 'when' opcode 1"),
    ],
    ids=["module-pre-ga", "type-42", "length-encoding", "string-encoding", "module-field", "module-aux"],
)
@pytest.mark.parametrize("size", [1, BIG])
def test_what_the_scanner_does_not_understand_gives_unknown(body: bytes, reason: str, size: int) -> None:
    good = select(0, 2, 0) + key(0, b"first", string(b"v" * 300))
    data = rdb(good + body + key(0, b"after", string(b"v")))
    counter = scan(data, size)
    assert counter.counts() is None
    assert counter.unknown_reason is not None and counter.unknown_reason.startswith(reason + " at byte ")
    assert counter.resizedb_hints() == {0: KeyspaceStats(keys=2, expires=0)}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"REDIS0013" + bytes(20), "RDB version 13 is not one this scanner knows (1-12) at byte 5"),
        (b"GARBAGE!!" + bytes(20), "not an RDB header: b'GARBAGE!!' at byte 0"),
        (b"", "the RDB ends after 0 bytes, before its EOF marker"),
    ],
)
def test_not_an_rdb_this_scanner_knows(data: bytes, reason: str) -> None:
    counter = scan(data, 4)
    assert counter.counts() is None
    assert counter.unknown_reason == reason
