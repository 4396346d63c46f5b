"""The RDB file header: `REDIS` followed by a four-digit format version."""

from __future__ import annotations

from redis_dr.errors import IntegrityError

RDB_MAGIC = b"REDIS"
RDB_HEADER_SIZE = 9


def parse_rdb_version(header: bytes) -> int:
    """Return the RDB format version from the first 9 bytes of a dump (more bytes are ignored)."""
    head = bytes(header[:RDB_HEADER_SIZE])
    digits = head[len(RDB_MAGIC) :]
    if (
        len(head) < RDB_HEADER_SIZE
        or not head.startswith(RDB_MAGIC)
        or not all(0x30 <= b <= 0x39 for b in digits)
    ):
        raise IntegrityError(f"not an RDB file: header is {head!r}, expected b'REDIS' + 4 digits")
    return int(digits)
