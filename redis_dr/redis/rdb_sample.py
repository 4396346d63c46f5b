"""What the RDB scanner records of a sampled key, and how it reads a key name.

`RdbCounter(sample=N)` (redis_dr/redis/rdb_scan.py) records about N keys spread
over the stream: their database, name, TYPE and absolute expiry. Key names are
RDB strings: plain, integer-encoded (0xC0-0xC2, saved as the number's text) or
LZF-compressed (0xC3); `decode_string` turns each back into the key's bytes.
"""

from __future__ import annotations

import struct

from pydantic import BaseModel, ConfigDict

from redis_dr.redis.lzf import lzf_decompress

#: TYPE's reply for each RDB value type (rdb.h numbering). Module values answer with
#: their module's type name; "module" stands for any of them.
TYPE_NAMES: dict[int, str] = {
    0: "string",
    1: "list",  # linked list (RDB < 7)
    2: "set",
    3: "zset",  # scores as text (RDB < 8)
    4: "hash",
    5: "zset",  # skiplist, binary scores
    6: "module",  # pre-GA format (the scanner stops there)
    7: "module",
    9: "hash",  # zipmap
    10: "list",  # ziplist
    11: "set",  # intset
    12: "zset",  # ziplist
    13: "hash",  # ziplist
    14: "list",  # quicklist of ziplists
    15: "stream",
    16: "hash",  # listpack
    17: "zset",  # listpack
    18: "list",  # quicklist of listpacks
    19: "stream",  # listpacks, format 2
    20: "set",  # listpack
    21: "stream",  # listpacks, format 3
    22: "hash",  # with field TTLs, 7.4 release candidates
    23: "hash",  # listpack with field TTLs, 7.4 release candidates
    24: "hash",  # with field TTLs
    25: "hash",  # listpack with field TTLs
}
#: The TYPE replies of Redis's own types: anything else is a module's type.
BUILTIN_TYPES = frozenset(TYPE_NAMES.values()) - {"module"}


class SampledKey(BaseModel):
    """One key of an RDB: where it is, its name, its type, and its absolute expiry if it had one.

    Key names can be secrets (session ids): show them only shortened
    (redis_dr.restore.compare.describe_key). In JSON the name is base64.
    """

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    db: int
    key: bytes
    #: TYPE's reply: string, list, set, zset, hash, stream, or "module" for a module's value.
    type: str
    #: Absolute expiry in Unix milliseconds, as the RDB holds it; None: the key does not expire.
    expire_ms: int | None = None


_INT_FORMATS = {0xC0: "<b", 0xC1: "<h", 0xC2: "<i"}


def decode_string(raw: bytes) -> bytes:
    """The bytes of one whole RDB string (rdbGenericLoadStringObject); ValueError if malformed."""
    b = raw[0]
    if b in _INT_FORMATS:
        return str(struct.unpack(_INT_FORMATS[b], raw[1:])[0]).encode()
    if b == 0xC3:
        compressed, pos = _length(raw, 1)
        size, pos = _length(raw, pos)
        if len(raw) - pos != compressed:
            raise ValueError("LZF string length does not match its bytes")
        return lzf_decompress(raw[pos:], size)
    if b >= 0xC0:
        raise ValueError(f"unknown string encoding {b & 0x3F}")
    size, pos = _length(raw, 0)
    if len(raw) - pos != size:
        raise ValueError("string length does not match its bytes")
    return raw[pos:]


def _length(raw: bytes, pos: int) -> tuple[int, int]:
    """One RDB length (rdbLoadLen) at `pos`: (value, end)."""
    b = raw[pos]
    if b < 0x40:
        return b, pos + 1
    if b < 0x80:
        return ((b & 0x3F) << 8) | raw[pos + 1], pos + 2
    if b == 0x80:
        return struct.unpack_from(">I", raw, pos + 1)[0], pos + 5
    if b == 0x81:
        return struct.unpack_from(">Q", raw, pos + 1)[0], pos + 9
    raise ValueError(f"unknown length encoding 0x{b:02x}")
