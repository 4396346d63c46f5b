"""Streaming stages between a snapshot and storage: hash, compress, encrypt, and back.

Every stage takes an iterable of byte chunks and yields byte chunks, so a chain
of stages holds a few chunks in memory whatever the dataset size. Stages that
wrap a blocking pull/push library (age) or that should overlap I/O with CPU
(`prefetch`) run a thread and hand chunks over through a bounded queue.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from typing import Any

import zstandard

from redis_dr.errors import ConfigError, IntegrityError

CHUNK = 1 << 20
#: Level 1, not zstd's default 3: on encrypted-looking session data it stores 1.8 % more bytes
#: but needs ~40 % less CPU, and the snapshot is bound by the server's own RDB encoding anyway;
#: CPU left idle is CPU the Redis host keeps (benchmarks/README.md).
ZSTD_LEVEL = 1
#: zstd's own worker threads (0: it compresses in the thread that calls it). The backup data
#: path already runs receiving and compressing in two threads, and level 1 alone compresses
#: ~480 MB/s, several times what a server streams; the extra workers made the data path slower
#: on 2 cores (paired runs: 7 %) and took 15-40 MB more memory. Raise it for slower levels.
ZSTD_THREADS = 0
GZIP_LEVEL = 6


class Compression(StrEnum):
    """How stored bytes are compressed."""

    ZSTD = "zstd"
    GZIP = "gzip"
    NONE = "none"

    @property
    def suffix(self) -> str:
        """File-name suffix of stored objects: `.zst`, `.gz` or nothing."""
        return {"zstd": ".zst", "gzip": ".gz", "none": ""}[self.value]


class Tally:
    """Counts and hashes the bytes that flow through `tap`."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def tap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass chunks through unchanged, counting and hashing them."""
        for chunk in chunks:
            self._hash.update(chunk)
            self.size += len(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        """Hex sha256 of everything tapped so far."""
        return self._hash.hexdigest()


class HeaderTap:
    """Captures the first `size` bytes of a stream (e.g. the RDB header).

    `check`, if given, is called with the header as soon as it is complete, so a
    stream that is not what it should be fails before it is stored.
    """

    def __init__(self, size: int, check: Callable[[bytes], object] | None = None) -> None:
        self.wanted = size
        self.header = b""
        self._check = check

    def tap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass chunks through unchanged, keeping the first bytes."""
        for chunk in chunks:
            if len(self.header) < self.wanted:
                self.header += chunk[: self.wanted - len(self.header)]
                if len(self.header) == self.wanted and self._check is not None:
                    self._check(self.header)
            yield chunk


class FirstChunkClock:
    """Notes when the first chunk arrived (`time.monotonic()`), e.g. when a server began to send."""

    def __init__(self) -> None:
        self.at: float | None = None

    def tap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass chunks through unchanged, noting the first one's arrival."""
        for chunk in chunks:
            if self.at is None:
                self.at = time.monotonic()
            yield chunk


def compress(
    chunks: Iterable[bytes], codec: Compression, *, threads: int = ZSTD_THREADS
) -> Iterator[bytes]:
    """Compress a stream: zstd (level 1, `threads` workers), gzip (level 6, `.gz`-compatible) or none."""
    if codec is Compression.NONE:
        yield from chunks
        return
    compressor: Any
    if codec is Compression.ZSTD:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=threads).compressobj()
    else:
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    tail = compressor.flush()
    if tail:
        yield tail


def decompress(chunks: Iterable[bytes], codec: Compression) -> Iterator[bytes]:
    """Undo `compress`; raises IntegrityError on a damaged or truncated stream."""
    if codec is Compression.NONE:
        yield from chunks
        return
    try:
        if codec is Compression.ZSTD:
            yield from _zstd_decompress(chunks)
        else:
            yield from _gzip_decompress(chunks)
    except (zstandard.ZstdError, zlib.error) as exc:
        raise IntegrityError(f"the stored {codec.value} stream is damaged: {exc}") from exc


def _zstd_decompress(chunks: Iterable[bytes]) -> Iterator[bytes]:
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    in_frame = False
    for chunk in chunks:
        while chunk:
            in_frame = True
            out = decompressor.decompress(chunk)
            if out:
                yield out
            if not decompressor.eof:
                break
            chunk = decompressor.unused_data  # a further frame follows
            decompressor = zstandard.ZstdDecompressor().decompressobj()
            in_frame = False
    if in_frame:
        raise IntegrityError("the stored zstd stream ends early (truncated object)")


def _gzip_decompress(chunks: Iterable[bytes]) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(47)
    in_member = False
    for chunk in chunks:
        while chunk:
            in_member = True
            out = decompressor.decompress(chunk, CHUNK)
            if out:
                yield out
            chunk = decompressor.unconsumed_tail
            if decompressor.eof:
                chunk = decompressor.unused_data  # concatenated gzip members
                decompressor = zlib.decompressobj(47)
                in_member = False
    if in_member:
        raise IntegrityError("the stored gzip stream ends early (truncated object)")


class _ChunkReader:
    """A file-like `read(n)` over an iterator of chunks (for libraries that pull)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = memoryview(b"")
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        while not self._buffer:
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:  # remembered: age wraps it into its own error
                self.error = exc
                raise
            if chunk is None:
                return b""
            self._buffer = memoryview(chunk)
        if size is None or size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(out)

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


class _Cancelled(Exception):
    """Raised inside a producer thread when the consumer went away."""


_DONE = object()


def threaded(producer: Callable[[Callable[[bytes], None]], None], *, depth: int = 4) -> Iterator[bytes]:
    """Run `producer(emit)` in a thread and yield what it emits, through a bounded queue.

    Errors in the producer re-raise in the consumer. If the consumer stops early
    the producer's next `emit` raises, so the thread ends.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def emit(data: bytes) -> None:
        while True:
            if stop.is_set():
                raise _Cancelled
            try:
                handoff.put(bytes(data), timeout=0.2)
                return
            except queue.Full:
                continue

    def run() -> None:
        outcome: object = _DONE
        try:
            producer(emit)
        except _Cancelled:
            return
        except BaseException as exc:  # handed to the consumer
            outcome = exc
        while not stop.is_set():
            try:
                handoff.put(outcome, timeout=0.2)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=run, name="redis-dr-stage", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def prefetch(chunks: Iterable[bytes], *, depth: int = 4) -> Iterator[bytes]:
    """Read ahead from `chunks` in a thread so the source's I/O overlaps our CPU work."""

    def pump(emit: Callable[[bytes], None]) -> None:
        for chunk in chunks:
            emit(chunk)

    return threaded(pump, depth=depth)


class _EmitWriter:
    """A file-like `write` that hands each write to `emit`."""

    def __init__(self, emit: Callable[[bytes], None]) -> None:
        self._emit = emit
        self.error: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            self._emit(data)
        except BaseException as exc:  # remembered: age wraps it into its own error
            self.error = exc
            raise
        return len(data)

    def flush(self) -> None:
        pass


def encrypt(chunks: Iterable[bytes], recipients: list[str]) -> Iterator[bytes]:
    """Encrypt a stream to age recipients (X25519 `age1...` or SSH public keys)."""
    import pyrage

    parsed = [parse_recipient(text) for text in recipients]

    def run(emit: Callable[[bytes], None]) -> None:
        reader, writer = _ChunkReader(chunks), _EmitWriter(emit)
        try:
            pyrage.encrypt_io(reader, writer, parsed)
        except pyrage.EncryptError:
            raise reader.error or writer.error or IntegrityError("age encryption failed") from None

    return threaded(run)


class WrongIdentityError(IntegrityError):
    """None of the given age identities is a recipient of the stream."""


def decrypt(chunks: Iterable[bytes], identities: list[Any]) -> Iterator[bytes]:
    """Decrypt an age stream with any of the given parsed identities.

    A stream that is damaged or truncated raises IntegrityError; one that none of
    the identities can open raises WrongIdentityError.
    """
    import pyrage

    def run(emit: Callable[[bytes], None]) -> None:
        reader, writer = _ChunkReader(chunks), _EmitWriter(emit)
        try:
            pyrage.decrypt_io(reader, writer, identities)
        except pyrage.DecryptError as exc:  # the header: no matching key, or not a valid age header
            cause = reader.error or writer.error
            if cause is not None:
                raise cause from None
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "no matching keys" in reason.lower():
                raise WrongIdentityError(
                    "none of the age identities given is one of its recipients "
                    "(is REDIS_DR_AGE_IDENTITY the right key?)"
                ) from None
            raise IntegrityError(f"its age header is damaged ({reason})") from None
        except OSError as exc:  # pyrage reports a payload chunk that fails authentication as OSError
            cause = reader.error or writer.error
            if cause is not None:
                raise cause from None
            raise IntegrityError(
                "its age payload is damaged or truncated (authentication failed)"
            ) from exc

    return threaded(run)


def parse_recipient(text: str) -> Any:
    """Parse an age recipient; raise ConfigError with the offending value if malformed."""
    import pyrage

    text = text.strip()
    try:
        if text.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(text)
        return pyrage.ssh.Recipient.from_str(text)
    except Exception as exc:  # pyrage raises its own RecipientError
        raise ConfigError(f"not an age recipient: {text[:24]}... ({exc})") from exc


def parse_identities(text: str) -> list[Any]:
    """Parse age identities from the text of an identity file (comments allowed)."""
    import pyrage

    identities = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except Exception as exc:
            raise ConfigError("the age identity is malformed (expected AGE-SECRET-KEY-1...)") from exc
    if not identities:
        raise ConfigError("no age identity found (expected AGE-SECRET-KEY-1...)")
    return identities
