"""The writing half of a key replay: RESTORE batches sent deep-pipelined, replies read as they come.

One thread drives the target socket (plain or TLS) in non-blocking mode: it
writes while the server has room and reads replies whenever they arrive, so
neither side waits for the other, with at most `window_bytes` sent but not yet
answered. Replies are counted per batch: `+OK` is a key written, unless its
absolute expiry has passed on the target's clock when the batch is answered (RESTORE
then stores nothing, or the key has expired since): counted as expired. `-BUSYKEY`
is a key kept. Any other
error stops the replay with one line that says how many keys were written.
"""

from __future__ import annotations

import queue
import selectors
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

from redis_dr.errors import (
    AccessDeniedError,
    PermanentError,
    RedisDRError,
    ServerFailureError,
    TransientError,
    UnsupportedError,
)
from redis_dr.restore.replay_source import Batch

_SEND = 256 << 10
_RECV = 256 << 10
_OK = b"+OK\r\n"


class DbCounts(BaseModel):
    """What the replay did in one database (updated as each batch is answered): keys scanned in
    the throwaway, written, kept (existing), expired before written, payload bytes."""

    scanned: int = 0
    written: int = 0
    kept: int = 0
    expired: int = 0
    payload_bytes: int = 0
    #: Keys the flush removed from the target before the replay.
    removed: int = 0


@dataclass
class _InFlight:
    batch: Batch
    done: int = 0
    busy: set[int] = field(default_factory=set)


#: Called with (keys written so far, payload bytes written so far) after each answered batch.
Progress = Callable[[int, int], None]


class Done:
    """Queue item: the producer has no more batches."""


class PipelinedWriter:
    """Send queued batches to the target and account for every reply; see the module docstring."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        where: str,
        counts: dict[int, DbCounts],
        acl_hint: str,
        payload_note: str,
        window_bytes: int,
        reply_timeout: float,
        now_ms: Callable[[], int],
        progress: Progress | None = None,
    ) -> None:
        self._sock = sock
        self._where = where
        self._counts = counts
        self._acl_hint = acl_hint
        self._payload_note = payload_note
        self._window = window_bytes
        self._timeout = reply_timeout
        self._progress = progress
        self._now_ms = now_ms
        self._inflight: deque[_InFlight] = deque()
        self._unanswered = 0  # bytes sent whose replies have not all arrived
        self._replies = bytearray()
        self.written = 0
        self._payload_written = 0

    def run(self, batches: queue.Queue[Batch | Done | BaseException]) -> None:
        """Write every batch from `batches` until a `Done`; re-raise an exception put in the queue."""
        sock = self._sock
        sock.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        out = memoryview(b"")
        sent = 0
        finished = False
        last_progress = time.monotonic()
        try:
            while True:
                if sent == len(out) and not finished and self._unanswered < self._window:
                    item = self._next(batches, wait=not self._inflight)
                    if isinstance(item, Done):
                        finished = True
                    elif isinstance(item, BaseException):
                        raise item
                    elif item is not None:
                        out, sent = memoryview(item.blob), 0
                        self._inflight.append(_InFlight(item))
                        self._unanswered += len(item.blob)
                if finished and sent == len(out) and not self._inflight:
                    return
                wants_write = sent < len(out)
                selector.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if wants_write else 0))
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                events = [] if pending else selector.select(self._timeout if self._inflight else 0.05)
                readable = pending or any(mask & selectors.EVENT_READ for _, mask in events)
                if readable and self._receive():
                    last_progress = time.monotonic()
                if wants_write and (readable or events):
                    step = self._send(out[sent : sent + _SEND])
                    sent += step
                    if step:
                        last_progress = time.monotonic()
                if self._inflight and time.monotonic() - last_progress > self._timeout:
                    raise TransientError(
                        f"Redis at {self._where} stopped answering for {self._timeout:.0f}s after "
                        f"{self.written} keys were written: {_RERUN}"
                    )
        finally:
            selector.close()

    def _next(
        self, batches: queue.Queue[Batch | Done | BaseException], *, wait: bool
    ) -> Batch | Done | BaseException | None:
        try:
            return batches.get(timeout=self._timeout) if wait else batches.get_nowait()
        except queue.Empty:
            if wait:
                raise TransientError(
                    f"the throwaway server gave no keys for {self._timeout:.0f}s "
                    f"({self.written} keys written to Redis at {self._where})"
                ) from None
            return None

    def _send(self, data: memoryview) -> int:
        try:
            return self._sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0
        except OSError as exc:
            raise self._lost(exc) from None

    def _receive(self) -> bool:
        """Read what the socket has and account for every complete reply; False if nothing came."""
        got = False
        while True:
            try:
                data = self._sock.recv(_RECV)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError as exc:
                raise self._lost(exc) from None
            if not data:
                raise self._lost(None)
            got = True
            self._replies += data
            tls_pending = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0
            if len(data) < _RECV and not tls_pending:
                break
        if got:
            self._account()
        return got

    def _account(self) -> None:
        replies = self._replies
        last = replies.rfind(b"\r\n")
        if last < 0:
            return
        if replies.find(b"-", 0, last) < 0:  # every complete reply is a success: count them at once
            self._successes(replies.count(b"\r\n", 0, last + 2))
        else:
            start = 0
            while (end := replies.find(b"\r\n", start, last + 2)) >= 0:
                if replies[start] == 0x2D:  # '-'
                    self._failure(bytes(replies[start + 1 : end]))
                else:
                    self._successes(1)
                start = end + 2
        del replies[: last + 2]

    def _successes(self, count: int) -> None:
        while count:
            current = self._inflight[0]
            step = min(count, current.batch.commands - current.done)
            current.done += step
            count -= step
            if current.done == current.batch.commands:
                self._finish(self._inflight.popleft())

    def _failure(self, text: bytes) -> None:
        current = self._inflight[0]
        line = text.decode("utf-8", "replace")
        code = line.split(" ", 1)[0].upper()
        if code == "BUSYKEY" and not current.batch.control:
            current.busy.add(current.done)
            current.done += 1
            if current.done == current.batch.commands:
                self._finish(self._inflight.popleft())
            return
        raise self._error(code, line, current.batch)

    def _finish(self, flight: _InFlight) -> None:
        batch = flight.batch
        self._unanswered -= len(batch.blob)
        if batch.control:
            return
        counts = self._counts[batch.db]
        now = self._now_ms()  # a key past its expiry now was dropped by RESTORE, or has expired since
        if flight.busy:
            pairs = zip(batch.ttl_index, batch.ttl_at, strict=True)
            expired = sum(at <= now and i not in flight.busy for i, at in pairs)
        else:
            expired = sum(at <= now for at in batch.ttl_at)
        written = batch.commands - len(flight.busy) - expired
        counts.scanned += batch.scanned
        counts.written += written
        counts.kept += len(flight.busy)
        counts.expired += expired + batch.vanished
        counts.payload_bytes += batch.payload_bytes
        self.written += written
        self._payload_written += batch.payload_bytes
        if self._progress is not None:
            self._progress(self.written, self._payload_written)

    def _error(self, code: str, line: str, batch: Batch) -> RedisDRError:
        what = "SELECT" if batch.control else "RESTORE"
        where, so_far = self._where, f"{self.written} keys written so far"
        shown = line[:200]
        if code == "NOPERM":
            return AccessDeniedError(f"NOPERM: Redis at {where} refused {what} ({shown}): {self._acl_hint}")
        if code == "OOM":
            return ServerFailureError(
                f"Redis at {where} is out of memory (OOM) after {so_far}: raise its maxmemory or free "
                f"memory, then replay again ({_RERUN})"
            )
        if code in ("MOVED", "ASK", "CROSSSLOT", "CLUSTERDOWN"):
            return UnsupportedError(
                f"Redis at {where} is a cluster ({shown}): replay into a cluster is not supported"
            )
        if code == "READONLY":
            return PermanentError(f"Redis at {where} is a read-only replica: replay into its master instead")
        if code == "LOADING":
            return TransientError(f"Redis at {where} is loading its dataset ({so_far}): {_RERUN}")
        if "payload version" in line.lower() or "bad data format" in line.lower():
            return UnsupportedError(
                f"Redis at {where} cannot read the keys' DUMP payloads ({shown}): {self._payload_note}"
            )
        return ServerFailureError(
            f"Redis at {where} refused {what} in database {batch.db} ({shown}); {so_far}"
        )

    def _lost(self, exc: OSError | None) -> TransientError:
        reason = f": {exc.strerror or exc}" if exc is not None else ""
        return TransientError(
            f"lost the connection to Redis at {self._where}{reason} after {self.written} keys were written: "
            f"{_RERUN}"
        )


_RERUN = "run the replay again (RESTORE ... REPLACE makes it idempotent)"
