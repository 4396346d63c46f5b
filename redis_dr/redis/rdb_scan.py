"""Count what an RDB holds as it streams past: per database, its keys and the keys with an expiry.

`RdbCounter.tap` passes chunks through unchanged while a parser walks the RDB
format (src/rdb.c `rdbLoadRioWithLoadingCtx` / `rdbLoadObject`, Redis 5-7.4,
RDB versions up to 12): opcodes, keys and the framing of every value type, never
the values themselves. Strings, LZF blobs, listpacks and the like are skipped by
their length, across chunk boundaries, so it holds one chunk plus at most a few
bytes of a length header, whatever the size of a value.

The parser is a generator that works on one buffer at a time. Whole entries are
read straight from the buffer on a fast path; an entry that straddles a chunk
boundary is read one part (a length, a string, a fixed field) at a time, the
generator yielding the offset where it must resume. A string that runs past
the buffer is skipped: the rest of it is dropped from the chunks that follow.

With `sample=N` it also records about N keys spread over the stream (database,
name, TYPE, absolute expiry: `samples()`), for verification after a restore.
Sampling costs nothing per key: the parser looks a key's type byte up in a table
it already uses, and arming a sample points the key types of that table at a
slow path that records the next key, once. Arms fall on a grid of byte offsets
(`_feed_sampled` cuts chunks at its points, but for those inside a long string):
its spacing is size / N when the size is known, and doubles, every other sample
dropped, whenever 2N samples are held: constant memory, any stream length. The
first key of every database is sampled too.

On anything it does not understand (an unknown type, a pre-GA module value, a
damaged length, a truncated stream) it stops counting, says why in
`unknown_reason`, and keeps passing bytes through. The RDB's CRC64 is recorded
(`checksum`), not verified: in pure Python it would cost more than the parse.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator, Iterable, Iterator

from redis_dr.redis.info import KeyspaceStats
from redis_dr.redis.rdb import RDB_HEADER_SIZE, RDB_MAGIC
from redis_dr.redis.rdb_sample import TYPE_NAMES, SampledKey, decode_string

#: Newest RDB format this scanner knows (Redis 7.4).
NEWEST_RDB_VERSION = 12
#: A resume point never needs more than a length header (an LZF header: 1 + 9 + 9 bytes);
#: a longer tail means the parser is not progressing.
_MAX_TAIL = 1 << 16

# Parts of a value: a string, a length, or a fixed number of bytes (negative: -n bytes).
_STR, _LEN, _DOUBLE = 0, 1, 2
_F4, _F8, _F16 = -4, -8, -16
_U32: Callable[[bytes, int], tuple[int]] = struct.Struct(">I").unpack_from
_U64: Callable[[bytes, int], tuple[int]] = struct.Struct(">Q").unpack_from
_I64_LE: Callable[[bytes, int], tuple[int]] = struct.Struct("<q").unpack_from
_I32_LE: Callable[[bytes, int], tuple[int]] = struct.Struct("<i").unpack_from

# What a leading byte starts, by kind.
_K_STRING = 0  # a key whose value is one string (string, listpack, intset, ziplist, zipmap ...)
_K_PREFIXED = 1  # 8 bytes (a hash's minimum field TTL), then one string
_K_AGGREGATE = 2  # a count, then that many elements
_K_STREAM = 3
_K_MODULE = 4
_K_OPCODE = 5
_K_UNKNOWN = 6
_K_SAMPLE = 7  # a key's type byte while a sample is armed: record this key

# RDB types whose value is a count of elements, each made of these parts (rdb.h numbering).
_AGGREGATES: dict[int, tuple[int, ...]] = {
    1: (_STR,),  # list (RDB < 7 linked list)
    2: (_STR,),  # set, hash table encoding
    3: (_STR, _DOUBLE),  # zset with scores as text (RDB < 8)
    4: (_STR, _STR),  # hash, hash table encoding
    5: (_STR, _F8),  # zset, skiplist encoding: member, binary double
    14: (_STR,),  # quicklist of ziplists (RDB 7-9)
    18: (_LEN, _STR),  # quicklist 2: container kind, listpack or plain node
    22: (_LEN, _STR, _STR),  # hash with field TTLs, 7.4 release candidates: ttl, field, value
    24: (_LEN, _STR, _STR),  # hash with field TTLs (after an 8-byte minimum TTL)
}
_STRING_TYPES = (0, 9, 10, 11, 12, 13, 16, 17, 20, 23)
_STREAM_TYPES = (15, 19, 21)

_OP_SLOT_INFO, _OP_FUNCTION2, _OP_FUNCTION_PRE_GA, _OP_MODULE_AUX = 0xF4, 0xF5, 0xF6, 0xF7
_OP_IDLE, _OP_FREQ, _OP_AUX, _OP_RESIZEDB = 0xF8, 0xF9, 0xFA, 0xFB
_OP_EXPIRETIME_MS, _OP_EXPIRETIME, _OP_SELECTDB, _OP_EOF = 0xFC, 0xFD, 0xFE, 0xFF


def _kind_of(rdb_type: int) -> int:
    if rdb_type in _STRING_TYPES:
        return _K_STRING
    if rdb_type == 25:  # hash listpack with field TTLs (7.4)
        return _K_PREFIXED
    if rdb_type in _AGGREGATES:
        return _K_AGGREGATE
    if rdb_type in _STREAM_TYPES:
        return _K_STREAM
    if rdb_type == 7:  # module value, format 2 (annotated, skippable)
        return _K_MODULE
    return _K_OPCODE if rdb_type >= 0xF4 else _K_UNKNOWN


_KIND = tuple(_kind_of(t) for t in range(256))
#: Key types are 0-25: arming a sample swaps this prefix of the table in, disarming the plain one.
_KEY_TYPES_END = 26
_PLAIN_PREFIX = list(_KIND[:_KEY_TYPES_END])
_ARMED_PREFIX = [_K_SAMPLE if kind < _K_OPCODE else kind for kind in _PLAIN_PREFIX]
#: Stored key names longer than this are passed over by the sampler (the next key is taken).
MAX_SAMPLED_KEY = 4096
#: The spacing of the sampling grid: at least this with a size hint; without one, this first
#: (a grid much finer than the chunks would cut them into many pieces before it had grown).
_MIN_STRIDE = 256
_FIRST_STRIDE = 1 << 16

# The parser yields the offset in its buffer where it must resume, and is sent the next buffer.
_Parser = Generator[int, bytes, int]
# A step of it returns the buffer it ended in and the offset after what it read.
_Step = Generator[int, bytes, tuple[bytes, int]]


class _Unknown(Exception):
    """The RDB holds something this scanner does not understand."""

    def __init__(self, reason: str, pos: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pos = pos


def _read_len(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a length (rdbLoadLen); return (value, end). IndexError/struct.error if cut short."""
    b = buf[pos]
    if b < 0x40:
        return b, pos + 1
    if b < 0x80:
        return ((b & 0x3F) << 8) | buf[pos + 1], pos + 2
    if b >= 0xC0:  # an encoding marker: rdbLoadLen(rdb, NULL) returns its six bits
        return b & 0x3F, pos + 1
    if b == 0x80:
        return _U32(buf, pos + 1)[0], pos + 5
    if b == 0x81:
        return _U64(buf, pos + 1)[0], pos + 9
    raise _Unknown(f"unknown length encoding 0x{b:02x}", pos)


def _str_end(buf: bytes, pos: int) -> int:
    """End of the string at `pos` (raw, integer or LZF); may lie beyond `buf`."""
    b = buf[pos]
    if b < 0x40:
        return pos + 1 + b
    if b < 0x80:
        return pos + 2 + (((b & 0x3F) << 8) | buf[pos + 1])
    if b >= 0xC0:
        enc = b & 0x3F
        if enc == 0:  # RDB_ENC_INT8
            return pos + 2
        if enc == 1:  # RDB_ENC_INT16
            return pos + 3
        if enc == 2:  # RDB_ENC_INT32
            return pos + 5
        if enc == 3:  # RDB_ENC_LZF: compressed length, uncompressed length, compressed bytes
            compressed, end = _read_len(buf, pos + 1)
            return _read_len(buf, end)[1] + compressed
        raise _Unknown(f"unknown string encoding {enc}", pos)
    if b == 0x80:
        return pos + 5 + _U32(buf, pos + 1)[0]
    if b == 0x81:
        return pos + 9 + _U64(buf, pos + 1)[0]
    raise _Unknown(f"unknown length encoding 0x{b:02x}", pos)


def _part_end(buf: bytes, pos: int, part: int) -> int:
    """End of one part of a value; may lie beyond `buf`."""
    if part == _STR:
        return _str_end(buf, pos)
    if part == _LEN:
        return _read_len(buf, pos)[1]
    if part == _DOUBLE:  # rdbLoadDoubleValue: 253-255 are NaN and infinities, else a text length
        b = buf[pos]
        return pos + 1 if b >= 253 else pos + 1 + b
    return pos - part  # fixed size


def _end_s(buf: bytes, pos: int) -> int:
    return _str_end(buf, pos)


def _end_ss(buf: bytes, pos: int) -> int:
    return _str_end(buf, _str_end(buf, pos))


def _end_sf8(buf: bytes, pos: int) -> int:
    return _str_end(buf, pos) + 8


def _end_sd(buf: bytes, pos: int) -> int:
    return _part_end(buf, _str_end(buf, pos), _DOUBLE)


def _end_ls(buf: bytes, pos: int) -> int:
    return _str_end(buf, _read_len(buf, pos)[1])


def _end_lss(buf: bytes, pos: int) -> int:
    return _str_end(buf, _str_end(buf, _read_len(buf, pos)[1]))


def _end_l(buf: bytes, pos: int) -> int:
    return _read_len(buf, pos)[1]


def _end_pel(buf: bytes, pos: int) -> int:
    return _read_len(buf, pos + 24)[1]  # stream id, delivery time, delivery count


# Whole-element readers for the fast path, by element shape.
_ELEMENT_END: dict[tuple[int, ...], Callable[[bytes, int], int]] = {
    (_STR,): _end_s,
    (_STR, _STR): _end_ss,
    (_STR, _F8): _end_sf8,
    (_STR, _DOUBLE): _end_sd,
    (_LEN, _STR): _end_ls,
    (_LEN, _STR, _STR): _end_lss,
    (_LEN,): _end_l,
    (_F16, _F8, _LEN): _end_pel,
}


class RdbCounter:
    """Counts, per database, the keys of an RDB streamed through `tap`, and its keys with an expiry.

    After the stream: `counts()` (None unless the whole RDB was understood, up to its
    EOF marker), `resizedb_hints()` (the per-database sizes the RDB announces),
    `rdb_version`, `checksum` (the stored CRC64 as hex, "0000000000000000" when the
    server saved without one; not verified), `unknown_reason` (why counting stopped),
    `trailing_bytes` (bytes after the checksum) and `bytes_seen`.

    `sample`: record about that many keys spread over the stream, and the first key of
    each database (`samples()`); `size`, the stream's expected length if known, spaces
    them from the start (without it the spacing grows as the stream goes on).
    Sampling never changes the counts.
    """

    def __init__(self, sample: int = 0, *, size: int | None = None) -> None:
        self.rdb_version: int | None = None
        self.checksum: str | None = None
        self.unknown_reason: str | None = None
        self.trailing_bytes = 0
        self.bytes_seen = 0
        self._keys: dict[int, int] = {}
        self._expires: dict[int, int] = {}
        self._hints: dict[int, KeyspaceStats] = {}
        self._done = False
        self._tail = b""  # bytes the parser asked to see again, with the next chunk
        self._skip = 0  # bytes of the stream still to drop (the rest of a long string)
        self._base = 0  # stream offset of the first byte of the parser's current buffer
        self._kinds = list(_KIND)  # what each leading byte starts; arming a sample changes it
        self._sample = sample
        self._stride = (max(_MIN_STRIDE, size // sample) if size else _FIRST_STRIDE) if sample else 0
        self._next_arm = 0  # stream offset of the next grid point
        self._armed_for_db = False  # ... as the first key of its database
        # Samples as (stream offset, db, name, RDB type, expiry): models are built when asked for.
        self._grid: list[tuple[int, int, bytes, int, int | None]] = []
        self._db_firsts: list[tuple[int, int, bytes, int, int | None]] = []
        self._parser = self._parse()
        next(self._parser)

    @property
    def complete(self) -> bool:
        """True when the scan reached the RDB's EOF marker and understood every byte before it."""
        return self._done and self.unknown_reason is None

    def counts(self) -> dict[int, KeyspaceStats] | None:
        """Keys and keys with an expiry per database, as the RDB holds them; None if not `complete`."""
        if not self.complete:
            return None
        return {
            db: KeyspaceStats(keys=keys, expires=self._expires.get(db, 0))
            for db, keys in sorted(self._keys.items())
        }

    def resizedb_hints(self) -> dict[int, KeyspaceStats]:
        """The RESIZEDB sizes per database seen so far (the saving server's key and expire counts)."""
        return dict(self._hints)

    def samples(self) -> list[SampledKey]:
        """The keys sampled so far, in stream order (a scan that stopped keeps those before the stop)."""
        taken = sorted(self._grid + self._db_firsts)
        return [
            SampledKey(db=db, key=key, type=TYPE_NAMES[rdb_type], expire_ms=expire_ms)
            for _, db, key, rdb_type, expire_ms in taken
        ]

    def tap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass chunks through unchanged, counting the keys of the RDB they carry."""
        try:
            for chunk in chunks:
                if self.unknown_reason is None:
                    try:
                        if self._sample:
                            self._feed_sampled(chunk)
                        else:
                            self._feed(chunk)
                    except _Unknown as exc:
                        self._stop(f"{exc.reason} at byte {self._base + exc.pos}")
                    except Exception as exc:  # never break the data path; report instead
                        self._stop(f"scanner error at byte {self.bytes_seen}: {exc!r}")
                yield chunk
        finally:
            if not self._done and self.unknown_reason is None:
                self._stop(f"the RDB ends after {self.bytes_seen} bytes, before its EOF marker")

    def _feed_sampled(self, chunk: bytes) -> None:
        """Feed `chunk`, arming a sample for each point of the sampling grid it holds.

        The first point in a piece arms at the piece's start; the chunk is cut at the
        further points (when the grid is finer than the chunks), except those inside
        a string being skipped: one arm takes the first key after it.
        """
        start, end = 0, len(chunk)
        while True:
            offset = self.bytes_seen
            if self._next_arm < offset + end - start and not self._done:
                self._arm()
                after = max(offset + self._skip, self._next_arm)
                self._next_arm = (after // self._stride + 1) * self._stride
            cut = start + self._next_arm - offset
            if cut >= end or self._done:
                self._feed(chunk[start:] if start else chunk)
                return
            self._feed(chunk[start:cut])
            start = cut

    def _arm(self, *, for_db: bool = False) -> None:
        """Record the next key whose type byte the parser reads."""
        self._kinds[:_KEY_TYPES_END] = _ARMED_PREFIX
        self._armed_for_db = self._armed_for_db or for_db

    def _take(self, offset: int, db: int, key: bytes, rdb_type: int, expire_ms: int | None) -> None:
        """Record one sampled key and disarm; thin the grid's samples when 2N are held."""
        self._kinds[:_KEY_TYPES_END] = _PLAIN_PREFIX
        if self._armed_for_db:
            self._armed_for_db = False
            if len(self._db_firsts) < self._sample:
                self._db_firsts.append((offset, db, key, rdb_type, expire_ms))
            return
        self._grid.append((offset, db, key, rdb_type, expire_ms))
        while len(self._grid) >= 2 * self._sample:  # keep the first sample of each cell of twice the size
            self._stride *= 2
            kept, cell = [], -1
            for taken in self._grid:
                if taken[0] // self._stride != cell:
                    kept.append(taken)
                    cell = taken[0] // self._stride
            self._grid = kept
        self._next_arm = -(-self._next_arm // self._stride) * self._stride

    def _stop(self, reason: str) -> None:
        self.unknown_reason = reason
        self._tail = b""
        self._parser.close()

    def _feed(self, chunk: bytes) -> None:
        start = self.bytes_seen
        self.bytes_seen += len(chunk)
        if self._done:
            self.trailing_bytes += len(chunk)
            return
        if not chunk:
            return
        if self._skip:
            if len(chunk) <= self._skip:
                self._skip -= len(chunk)
                return
            chunk, start = chunk[self._skip :], start + self._skip
            self._skip = 0
        buf = self._tail + chunk if self._tail else chunk
        self._base = start - len(self._tail)
        try:
            resume = self._parser.send(buf)
        except StopIteration as stop:
            self._done = True
            self.trailing_bytes += len(buf) - stop.value
            return
        if resume >= len(buf):
            self._tail, self._skip = b"", resume - len(buf)
        else:
            self._tail = buf[resume:]
            if len(self._tail) > _MAX_TAIL:
                raise _Unknown("the scanner stopped making progress", resume)

    def _parse(self) -> _Parser:
        """The RDB, top level: header, opcodes and keys (rdbLoadRioWithLoadingCtx)."""
        buf = yield 0
        pos = 0
        while len(buf) < RDB_HEADER_SIZE:
            buf = yield 0
        head = bytes(buf[:RDB_HEADER_SIZE])
        if not head.startswith(RDB_MAGIC) or not head[5:].isdigit():
            raise _Unknown(f"not an RDB header: {head!r}", 0)
        version = self.rdb_version = int(head[5:])
        if not 1 <= version <= NEWEST_RDB_VERSION:
            raise _Unknown(f"RDB version {version} is not one this scanner knows (1-{NEWEST_RDB_VERSION})", 5)
        pos = RDB_HEADER_SIZE
        db, keys, expires, expiring, expire_ms = 0, 0, 0, False, 0
        kinds = self._kinds
        while True:
            try:
                t = buf[pos]
            except IndexError:
                buf = yield pos
                pos = 0
                continue
            kind = kinds[t]
            if kind == _K_STRING:
                try:  # fast path: key and value wholly or partly in this buffer
                    p = pos + 1
                    b = buf[p]
                    p = p + 1 + b if b < 0x40 else _str_end(buf, p)
                    b = buf[p]
                    if b < 0x40:
                        p += 1 + b
                    elif b < 0x80:
                        p += 2 + (((b & 0x3F) << 8) | buf[p + 1])
                    else:
                        p = _str_end(buf, p)
                except (IndexError, struct.error):
                    pass  # the header of the key or value is cut off: read it part by part
                else:
                    keys += 1
                    if expiring:
                        expires += 1
                        expiring = False
                    pos = p
                    continue
            if kind == _K_UNKNOWN:
                if t == 6:
                    raise _Unknown("a module value in the pre-GA format (RDB type 6) cannot be skipped", pos)
                raise _Unknown(f"unknown RDB type {t}", pos)
            if kind < _K_OPCODE:  # a key: type, key, value
                buf, pos = yield from _parts(buf, pos + 1, 1, (_STR,))
                keys += 1
                if expiring:
                    expires += 1
                    expiring = False
                buf, pos = yield from _value(buf, pos, t, kind)
            elif t == _OP_EXPIRETIME_MS:
                if pos + 9 <= len(buf):
                    expire_ms = _I64_LE(buf, pos + 1)[0]
                    pos += 9
                else:
                    buf, pos, raw = yield from _fixed(buf, pos + 1, 8)
                    expire_ms = _I64_LE(raw, 0)[0]
                expiring = True
            elif t == _OP_EXPIRETIME:
                buf, pos, raw = yield from _fixed(buf, pos + 1, 4)
                expire_ms = _I32_LE(raw, 0)[0] * 1000
                expiring = True
            elif t == _OP_SELECTDB:
                self._flush(db, keys, expires)
                buf, pos, db = yield from _length(buf, pos + 1)
                keys, expires = self._keys.get(db, 0), self._expires.get(db, 0)
                if self._sample:
                    self._arm(for_db=True)
            elif t == _OP_RESIZEDB:
                buf, pos, size = yield from _length(buf, pos + 1)
                buf, pos, expires_size = yield from _length(buf, pos)
                self._hints[db] = KeyspaceStats(keys=size, expires=expires_size)
            elif t == _OP_EOF:
                self._flush(db, keys, expires)
                pos += 1
                if version >= 5:
                    while len(buf) - pos < 8:
                        buf = yield pos
                        pos = 0
                    self.checksum = bytes(buf[pos : pos + 8])[::-1].hex()
                    pos += 8
                return pos
            elif kind == _K_SAMPLE:  # a key's type byte while armed: the slow path, recording it
                offset = self._base + pos
                buf, pos, name = yield from _key_name(buf, pos + 1)
                keys += 1
                expiry = None
                if expiring:
                    expires += 1
                    expiring = False
                    expiry = expire_ms
                if name is not None:
                    self._take(offset, db, name, t, expiry)
                buf, pos = yield from _value(buf, pos, t, _KIND[t])
            else:
                buf, pos = yield from _opcode(buf, pos, t)

    def _flush(self, db: int, keys: int, expires: int) -> None:
        if keys or db in self._keys:
            self._keys[db] = keys
            self._expires[db] = expires


def _length(buf: bytes, pos: int) -> Generator[int, bytes, tuple[bytes, int, int]]:
    """Read one length, waiting for more data if its bytes are cut off."""
    while True:
        try:
            value, end = _read_len(buf, pos)
        except (IndexError, struct.error):
            buf = yield pos
            pos = 0
        else:
            return buf, end, value


def _fixed(buf: bytes, pos: int, size: int) -> Generator[int, bytes, tuple[bytes, int, bytes]]:
    """Read `size` bytes, waiting for more data if they are cut off."""
    while len(buf) - pos < size:
        buf = yield pos
        pos = 0
    return buf, pos + size, bytes(buf[pos : pos + size])


def _key_name(buf: bytes, pos: int) -> Generator[int, bytes, tuple[bytes, int, bytes | None]]:
    """Read a key's name whole (the end of the buffer after it); None, and the name skipped, if it
    is longer than MAX_SAMPLED_KEY stored or does not decode (e.g. damaged LZF)."""
    while True:
        try:
            end = _str_end(buf, pos)
        except (IndexError, struct.error):
            buf = yield pos
            pos = 0
            continue
        if end - pos > MAX_SAMPLED_KEY:
            if end > len(buf):  # the rest of it is in chunks still to come
                buf = yield end
                end = 0
            return buf, end, None
        if end > len(buf):
            buf = yield pos
            pos = 0
            continue
        try:
            return buf, end, decode_string(bytes(buf[pos:end]))
        except (ValueError, IndexError, struct.error):
            return buf, end, None


def _parts(buf: bytes, pos: int, count: int, parts: tuple[int, ...]) -> _Step:
    """Skip `count` elements made of `parts`: whole elements while they fit, else part by part."""
    element_end = _ELEMENT_END.get(parts)
    strings = len(parts) if set(parts) == {_STR} else 0
    while count:
        if element_end is not None:
            n = len(buf)
            try:
                if strings == 2:  # hash fields and values: short strings inline, without calls
                    while count:
                        b = buf[pos]
                        p = pos + 1 + b if b < 0x40 else _str_end(buf, pos)
                        b = buf[p]
                        p = p + 1 + b if b < 0x40 else _str_end(buf, p)
                        if p > n:
                            break
                        pos = p
                        count -= 1
                elif strings == 1:  # set members, list elements
                    while count:
                        b = buf[pos]
                        p = pos + 1 + b if b < 0x40 else _str_end(buf, pos)
                        if p > n:
                            break
                        pos = p
                        count -= 1
                while count:
                    p = element_end(buf, pos)
                    if p > n:
                        break
                    pos = p
                    count -= 1
            except (IndexError, struct.error):
                pass
            if not count:
                break
        for part in parts:  # this element straddles the end of the buffer
            while True:
                try:
                    p = _part_end(buf, pos, part)
                    break
                except (IndexError, struct.error):
                    buf = yield pos
                    pos = 0
            pos = p
            if pos > len(buf):  # the rest of a long string is in chunks still to come
                buf = yield pos
                pos = 0
        count -= 1
    return buf, pos


def _value(buf: bytes, pos: int, rdb_type: int, kind: int) -> _Step:
    """Skip the value of a key of `rdb_type` (rdbLoadObject)."""
    if kind == _K_STRING:
        return (yield from _parts(buf, pos, 1, (_STR,)))
    if kind == _K_PREFIXED:
        return (yield from _parts(buf, pos, 1, (_F8, _STR)))
    if kind == _K_AGGREGATE:
        if rdb_type == 24:  # minimum field TTL first
            buf, pos = yield from _parts(buf, pos, 1, (_F8,))
        buf, pos, count = yield from _length(buf, pos)
        return (yield from _parts(buf, pos, count, _AGGREGATES[rdb_type]))
    if kind == _K_STREAM:
        return (yield from _stream(buf, pos, rdb_type))
    buf, pos, _module_id = yield from _length(buf, pos)  # _K_MODULE
    return (yield from _module_fields(buf, pos))


def _stream(buf: bytes, pos: int, rdb_type: int) -> _Step:
    """Skip a stream: listpacks, metadata, consumer groups with their PELs and consumers."""
    v2, v3 = rdb_type >= 19, rdb_type >= 21
    buf, pos, listpacks = yield from _length(buf, pos)
    buf, pos = yield from _parts(buf, pos, listpacks, (_STR, _STR))  # master id, listpack
    # length, last id; from v2 first id, max deleted id, entries added
    buf, pos = yield from _parts(buf, pos, 8 if v2 else 3, (_LEN,))
    buf, pos, groups = yield from _length(buf, pos)
    for _ in range(groups):
        buf, pos = yield from _parts(buf, pos, 1, (_STR, _LEN, _LEN, _LEN) if v2 else (_STR, _LEN, _LEN))
        buf, pos, pending = yield from _length(buf, pos)
        buf, pos = yield from _parts(buf, pos, pending, (_F16, _F8, _LEN))  # id, delivery time, count
        buf, pos, consumers = yield from _length(buf, pos)
        for _ in range(consumers):
            buf, pos = yield from _parts(buf, pos, 1, (_STR, _F8, _F8) if v3 else (_STR, _F8))
            buf, pos, owned = yield from _length(buf, pos)
            buf, pos = yield from _parts(buf, pos, owned, (_F16,))
    return buf, pos


def _module_fields(buf: bytes, pos: int) -> _Step:
    """Skip a module's annotated fields up to their EOF (rdbLoadCheckModuleValue)."""
    fields = {1: (_LEN,), 2: (_LEN,), 3: (_F4,), 4: (_F8,), 5: (_STR,)}  # sint, uint, float, double, string
    while True:
        buf, pos, opcode = yield from _length(buf, pos)
        if opcode == 0:
            return buf, pos
        if opcode not in fields:
            raise _Unknown(f"unknown module field opcode {opcode}", pos)
        buf, pos = yield from _parts(buf, pos, 1, fields[opcode])


def _opcode(buf: bytes, pos: int, opcode: int) -> _Step:
    """Skip an opcode that carries no key: aux fields, functions, module aux data, hints."""
    pos += 1
    if opcode == _OP_AUX:
        return (yield from _parts(buf, pos, 1, (_STR, _STR)))
    if opcode == _OP_FUNCTION2:
        return (yield from _parts(buf, pos, 1, (_STR,)))
    if opcode == _OP_FUNCTION_PRE_GA:  # name, engine, has description, [description], code
        buf, pos = yield from _parts(buf, pos, 1, (_STR, _STR))
        buf, pos, has_description = yield from _length(buf, pos)
        return (yield from _parts(buf, pos, 2 if has_description else 1, (_STR,)))
    if opcode == _OP_MODULE_AUX:  # module id, UINT opcode, when, fields
        buf, pos, _module_id = yield from _length(buf, pos)
        buf, pos, when_opcode = yield from _length(buf, pos)
        if when_opcode != 2:
            raise _Unknown(f"module aux data with 'when' opcode {when_opcode}", pos)
        buf, pos = yield from _parts(buf, pos, 1, (_LEN,))
        return (yield from _module_fields(buf, pos))
    if opcode == _OP_IDLE:
        return (yield from _parts(buf, pos, 1, (_LEN,)))
    if opcode == _OP_FREQ:
        return (yield from _parts(buf, pos, 1, (-1,)))
    if opcode == _OP_SLOT_INFO:  # slot, keys, expires (cluster mode, 7.4)
        return (yield from _parts(buf, pos, 3, (_LEN,)))
    raise _Unknown(f"unknown RDB opcode {opcode}", pos - 1)


def count_rdb(chunks: Iterable[bytes], sample: int = 0) -> RdbCounter:
    """Scan a whole RDB (e.g. a file's chunks) and return the counter."""
    counter = RdbCounter(sample)
    for _ in counter.tap(chunks):
        pass
    return counter
