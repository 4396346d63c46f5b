"""Snapshot by replication: ask the server for a full sync and read the RDB it sends.

Spoken over a redis-py connection, so AUTH, ACL users and TLS come from the
client. The connection becomes a replica link, so it is always closed after use
(the pool gets back a disconnected shell that reconnects fresh when next used).

Protocol: `REPLCONF capa eof`, `REPLCONF rdb-only 1` (Redis >= 7.0; an older
server's "unrecognized option" is tolerated), `SYNC`. While the server forks it
sends bare `\\n` keepalives. The payload is `$<len>\\r\\n` + len bytes (disk-based
sync) or `$EOF:<40-byte marker>\\r\\n` + data + the same marker (diskless sync).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import redis

from redis_dr.errors import IntegrityError, TransientError
from redis_dr.redis.connection import RedisEndpoint, endpoint_of
from redis_dr.redis.errors import translate
from redis_dr.redis.rdb import RDB_HEADER_SIZE, parse_rdb_version

EOF_MARK_SIZE = 40
#: Chunks small enough to stay in the CPU cache while they are hashed, compressed and
#: written: against 1 MiB chunks, 128 KiB made the data path of a 1 GB snapshot ~7 %
#: faster on 2 cores, where the server's fork child competes for memory bandwidth.
STREAM_CHUNK = 128 << 10
_MAX_HEADER = 4096

PayloadFormat = Literal["disk", "diskless"]


class ReplicationStream:
    """The RDB of one full sync: iterate once for `bytes` chunks (header included).

    Attributes: `payload_format` ("disk" or "diskless"), `declared_size` (bytes
    announced by a disk-based sync, else None), `rdb_only` (the server accepted
    `REPLCONF rdb-only`), and after reading: `bytes_read`, `rdb_version`.
    """

    def __init__(
        self,
        sock: socket.socket,
        endpoint: RedisEndpoint,
        header: bytes,
        rest: bytes,
        *,
        chunk_size: int,
        read_timeout: float,
        rdb_only: bool,
    ) -> None:
        self._sock = sock
        self._endpoint = endpoint
        self._rest = rest
        self._chunk_size = chunk_size
        self._read_timeout = read_timeout
        self._started = False
        self.rdb_only = rdb_only
        self.bytes_read = 0
        self.rdb_version: int | None = None
        self.declared_size: int | None
        self._marker: bytes | None
        if header.startswith(b"$EOF:") and len(header) == 5 + EOF_MARK_SIZE:
            self.payload_format: PayloadFormat = "diskless"
            self._marker, self.declared_size = header[5:], None
        elif header[1:].isdigit():
            self.payload_format = "disk"
            self._marker, self.declared_size = None, int(header[1:])
        else:
            raise IntegrityError(
                f"Redis at {endpoint.address} sent an unexpected SYNC payload header {header[:60]!r}"
            )

    def __repr__(self) -> str:
        return (
            f"ReplicationStream({self._endpoint.redacted()}, format={self.payload_format}, "
            f"declared_size={self.declared_size}, bytes_read={self.bytes_read})"
        )

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a ReplicationStream can be read only once")
        self._started = True
        self._sock.settimeout(self._read_timeout)
        chunks = self._diskless() if self._marker is not None else self._sized()
        for chunk in chunks:
            if self.rdb_version is None:
                self.rdb_version = parse_rdb_version(chunk[:RDB_HEADER_SIZE])
            self.bytes_read += len(chunk)
            yield chunk

    def _sized(self) -> Iterator[bytes]:
        size = self.declared_size or 0
        buf = bytearray(max(self._chunk_size, len(self._rest)))
        view = memoryview(buf)
        filled = min(len(self._rest), size)
        buf[:filled] = self._rest[:filled]
        remaining = size - filled
        while True:
            limit = min(len(buf), filled + remaining)
            while filled < limit:
                n = self._recv_into(view[filled:limit], done=size - remaining)
                filled += n
                remaining -= n
            if filled:
                yield bytes(view[:filled])
                filled = 0
            if remaining == 0:
                return

    def _diskless(self) -> Iterator[bytes]:
        marker = self._marker or b""
        buf = bytearray(max(self._chunk_size, len(self._rest)) + EOF_MARK_SIZE)
        view = memoryview(buf)
        filled = len(self._rest)
        buf[:filled] = self._rest
        done = 0
        while True:
            if filled >= EOF_MARK_SIZE and view[filled - EOF_MARK_SIZE : filled] == marker:
                if filled > EOF_MARK_SIZE:
                    yield bytes(view[: filled - EOF_MARK_SIZE])
                return
            if filled == len(buf):  # keep the last 40 bytes: the marker may straddle chunks
                yield bytes(view[: filled - EOF_MARK_SIZE])
                done += filled - EOF_MARK_SIZE
                view[:EOF_MARK_SIZE] = view[filled - EOF_MARK_SIZE : filled]
                filled = EOF_MARK_SIZE
            filled += self._recv_into(view[filled:], done=done + filled)

    def _recv_into(self, target: memoryview, *, done: int) -> int:
        where = self._endpoint.address
        try:
            n = self._sock.recv_into(target)
        except TimeoutError:
            raise TransientError(
                f"Redis at {where} stopped sending the snapshot after {done} bytes "
                f"(no data for {self._read_timeout:.0f}s)"
            ) from None
        except OSError as exc:
            raise TransientError(
                f"lost the connection to Redis at {where} after {done} bytes of the snapshot: "
                f"{exc.strerror or exc}"
            ) from None
        if n == 0:
            expected = (
                f"of {self.declared_size} declared"
                if self.declared_size is not None
                else "without the end-of-stream marker"
            )
            raise TransientError(  # the server closed the link (restart, buffer limit): retry
                f"the snapshot stream from Redis at {where} ended early: {done} bytes {expected}"
            )
        return n


@contextmanager
def replication_snapshot(
    client: redis.Redis,
    *,
    chunk_size: int = STREAM_CHUNK,
    first_byte_timeout: float = 120.0,
    read_timeout: float = 60.0,
) -> Iterator[ReplicationStream]:
    """Start a full sync on `client`'s server and yield the RDB as a `ReplicationStream`.

    `first_byte_timeout` bounds the wait (keepalives included) for the payload
    header, i.e. the server's fork; `read_timeout` bounds each later read.
    The connection is closed on exit, whether or not the stream was consumed.
    """
    endpoint = endpoint_of(client)
    pool = client.connection_pool
    try:
        conn: Any = pool.get_connection()
    except Exception as exc:
        raise translate(exc, endpoint, "connect", mode="stream") from None
    try:
        rdb_only = _handshake(conn, endpoint)
        sock: socket.socket = conn._sock
        pending = bytearray(_parser_leftover(conn))
        try:
            sock.sendall(b"".join(conn.pack_command("SYNC")))
            header = _read_header(sock, pending, endpoint, first_byte_timeout)
        except OSError as exc:
            raise translate(exc, endpoint, "SYNC", mode="stream") from None
        yield ReplicationStream(
            sock,
            endpoint,
            header,
            bytes(pending),
            chunk_size=chunk_size,
            read_timeout=read_timeout,
            rdb_only=rdb_only,
        )
    finally:
        conn.disconnect()
        pool.release(conn)


def _handshake(conn: Any, endpoint: RedisEndpoint) -> bool:
    """Send the REPLCONFs; return whether the server accepted `rdb-only`.

    A refused `REPLCONF capa eof` (NOPERM) must stop us: without it the server
    would still serve SYNC by a disk BGSAVE that rewrites its own dump.rdb.
    """
    rdb_only = True
    for option, value in (("capa", "eof"), ("rdb-only", "1")):
        action = f"REPLCONF {option} {value}"
        try:
            conn.send_command("REPLCONF", option, value)
            conn.read_response()
        except redis.ResponseError as exc:
            text = str(exc).upper()
            if option == "rdb-only" and "UNRECOGNIZED" in text:
                rdb_only = False  # Redis < 7.0: a normal full sync, we stop after the RDB
                continue
            raise translate(exc, endpoint, action, mode="stream") from None
        except Exception as exc:
            raise translate(exc, endpoint, action, mode="stream") from None
    return rdb_only


def _parser_leftover(conn: Any) -> bytes:
    """Bytes redis-py's pure-Python parser read from the socket but did not consume."""
    socket_buffer = getattr(getattr(conn, "_parser", None), "_buffer", None)
    bytes_io = getattr(socket_buffer, "_buffer", None)
    if bytes_io is None or not hasattr(bytes_io, "read"):
        return b""
    return bytes(bytes_io.read())


def _read_header(sock: socket.socket, pending: bytearray, endpoint: RedisEndpoint, timeout: float) -> bytes:
    """Skip keepalive newlines and return the payload header line; `pending` keeps the rest."""
    deadline = time.monotonic() + timeout
    while True:
        skip = len(pending) - len(pending.lstrip(b"\n"))
        del pending[:skip]
        end = pending.find(b"\r\n")
        if end >= 0:
            line = bytes(pending[:end])
            del pending[: end + 2]
            if line.startswith(b"-"):
                error = redis.ResponseError(line[1:].decode("utf-8", "replace"))
                raise translate(error, endpoint, "SYNC", mode="stream")
            return line
        if len(pending) > _MAX_HEADER:
            raise IntegrityError(
                f"Redis at {endpoint.address} answered SYNC with {bytes(pending[:60])!r}..., "
                "not an RDB payload"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientError(
                f"Redis at {endpoint.address} did not start sending the snapshot within "
                f"{timeout:.0f}s (slow fork or busy server): try again or raise first_byte_timeout"
            )
        sock.settimeout(remaining)
        try:
            data = sock.recv(_MAX_HEADER)
        except TimeoutError:
            continue
        if not data:
            raise TransientError(
                f"Redis at {endpoint.address} closed the connection before sending the snapshot "
                "(see its log: replica output buffer limit, fork failure?)"
            )
        pending += data
