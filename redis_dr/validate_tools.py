"""Redis's own checkers on a backup's bytes: redis-check-rdb fed as it streams, redis-check-aof on files.

redis-check-rdb reads its file through stdio, front to back (src/redis-check-rdb.c:
`fopen`, `rioInitWithFile`, `rioRead`; `fstat` only sizes its progress report), so
it reads a pipe as well as a file: `RdbCheck` runs it on `/dev/stdin` and writes
the RDB to it while the bytes are downloaded, verified and counted. Nothing is
written to disk. redis-check-aof needs the files of a multi-part AOF laid out in
a directory beside their manifest; `check_aof_dir` runs it there.

Both run with a bounded time: redis-check-rdb is killed when it stops reading for
STALL_SECONDS (longer than a storage read may block) or does not finish within
FINISH_SECONDS of its input ending. Their argv hold paths only. The verdict is
read from their last lines and given as one line.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from redis_dr.sandbox.redis_server import find_redis_binary
from redis_dr.storage.base import READ_TIMEOUT

CHECK_RDB = "redis-check-rdb"
CHECK_AOF = "redis-check-aof"
#: redis-check-rdb not reading for this long is killed (a storage read gives up after READ_TIMEOUT).
STALL_SECONDS = 2 * READ_TIMEOUT
#: Seconds a checker may take after its whole input is there (plus the size at a slow rate).
FINISH_SECONDS = 120.0
_SLOW_RATE = 20e6
_RDB_ERROR = "--- RDB ERROR DETECTED ---"
_ANALYZED = re.compile(r"AOF analyzed: filename=(?P<name>.+?), size=(?P<size>\d+), ok_up_to=(?P<ok>\d+)")


@dataclass(frozen=True)
class Verdict:
    """What a checker said: `ok`, and one line (the reason when not ok, a note when ok)."""

    ok: bool
    line: str


def finish_timeout(size: int) -> float:
    """Seconds a checker may take over `size` bytes it has been given whole."""
    return FINISH_SECONDS + size / _SLOW_RATE


def rdb_verdict(returncode: int | None, output: str, tool: str = CHECK_RDB) -> Verdict:
    """The verdict of redis-check-rdb from its exit status and output."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if returncode == 0 and any("RDB looks OK" in line for line in lines):
        return Verdict(True, f"{tool}: RDB looks OK")
    return Verdict(False, f"{tool}: {_rdb_error(lines) or _last(lines, returncode)}")


def _rdb_error(lines: list[str]) -> str | None:
    """'Unexpected EOF reading RDB file at byte 299996 (while doing read-object-value)'."""
    if _RDB_ERROR not in lines:
        return None
    after = lines[lines.index(_RDB_ERROR) + 1 :]
    if not after:
        return "RDB error detected"
    match = re.match(r"\[offset (\d+)\] (.*)", after[0])
    reason = f"{match.group(2)} at byte {match.group(1)}" if match else after[0]
    doing = next((line.split(": ", 1)[1] for line in after if "While doing: " in line), None)
    return reason + (f" (while doing {doing})" if doing else "")


def _last(lines: list[str], returncode: int | None) -> str:
    status = "no exit status" if returncode is None else f"exit status {returncode}"
    return f"{lines[-1][:200]} ({status})" if lines else f"no output ({status})"


class RdbCheck:
    """redis-check-rdb reading an RDB from its stdin while `tap` passes the stream through.

    A use: `with RdbCheck() as check: for _ in check.tap(chunks): ...`, then
    `check.verdict()`. If the checker stops early (it found an error) the stream
    still flows through `tap`, so that whatever hashes it keeps going.
    """

    def __init__(self) -> None:
        self._output: IO[bytes] = tempfile.TemporaryFile(prefix="redis-dr-check-")  # noqa: SIM115 (closed on exit)
        self._process = subprocess.Popen(
            [find_redis_binary(CHECK_RDB), "/dev/stdin"],
            stdin=subprocess.PIPE,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        self._open = True  # its stdin takes bytes
        self._progress = time.monotonic()
        self._killed_for: str | None = None
        self._done = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="redis-dr-check-rdb", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        while not self._done.wait(1.0):
            if self._open and time.monotonic() - self._progress > STALL_SECONDS:
                self._killed_for = f"it read nothing for {STALL_SECONDS:.0f} s"
                self._process.kill()
                return

    def tap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass chunks through, writing each to the checker while it still reads."""
        stdin = self._process.stdin
        assert stdin is not None
        for chunk in chunks:
            if self._open:
                try:
                    stdin.write(chunk)
                except BrokenPipeError:  # it stopped reading: its verdict says why
                    self._open = False
                self._progress = time.monotonic()
            yield chunk

    def verdict(self, size: int) -> Verdict:
        """End its input and wait (up to `finish_timeout(size)`) for its verdict."""
        self._close_input()
        try:
            returncode: int | None = self._process.wait(timeout=finish_timeout(size))
        except subprocess.TimeoutExpired:
            self._process.kill()
            returncode = self._process.wait()
            self._killed_for = f"it did not finish within {finish_timeout(size):.0f} s"
        if self._killed_for is not None:
            return Verdict(False, f"{CHECK_RDB}: killed: {self._killed_for}")
        self._output.seek(0)
        return rdb_verdict(returncode, self._output.read().decode("utf-8", "replace"))

    def _close_input(self) -> None:
        stdin, self._open = self._process.stdin, False
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    def __enter__(self) -> RdbCheck:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        if self._process.poll() is None:
            self._process.kill()
        self._close_input()
        self._process.wait()
        self._watchdog.join(timeout=5)
        self._output.close()


def check_aof_dir(manifest_path: Path, last_incr: str | None, size: int) -> Verdict:
    """Run redis-check-aof on a multi-part AOF laid out as the server had it (`manifest_path`
    beside its files). A last incr file that ends in the middle of a command, after whole
    ones, passes with a note: Redis drops that tail at load (`aof-load-truncated yes`, the
    default), and a copy of a busy server's AOF may end so (redis_dr/aof.py)."""
    argv = [find_redis_binary(CHECK_AOF), str(manifest_path)]
    try:
        result = subprocess.run(
            argv, capture_output=True, timeout=finish_timeout(size), check=False, cwd=manifest_path.parent
        )
    except subprocess.TimeoutExpired:
        return Verdict(False, f"{CHECK_AOF}: killed: it did not finish within {finish_timeout(size):.0f} s")
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if result.returncode == 0 and lines and lines[-1].endswith("valid") and "not valid" not in lines[-1]:
        return Verdict(True, f"{CHECK_AOF}: {lines[-1]}")
    rdb_error = _rdb_error(lines)
    if rdb_error is not None:
        return Verdict(False, f"{CHECK_AOF}: the base file: {rdb_error}")
    analyzed = [match for line in lines if (match := _ANALYZED.search(line))]
    if analyzed and last_incr is not None and analyzed[-1].group("name") == last_incr:
        failed = analyzed[-1]
        path = manifest_path.parent / last_incr
        ok_up_to, file_size = int(failed.group("ok")), int(failed.group("size"))
        with path.open("rb") as file:
            file.seek(ok_up_to)
            tail = file.read()
        if ends_in_partial_command(tail):
            return Verdict(
                True,
                f"{CHECK_AOF}: valid up to byte {ok_up_to:,} of {last_incr} ({file_size:,} bytes); "
                "the rest is an unfinished command or transaction that Redis drops at load "
                "(aof-load-truncated yes)",
            )
    detail = [line for line in lines if line.startswith("0x") or "not valid" in line]
    return Verdict(False, f"{CHECK_AOF}: {'; '.join(detail) if detail else _last(lines, result.returncode)}")


def ends_in_partial_command(tail: bytes) -> bool:
    """True if `tail` is whole RESP commands (an unfinished MULTI) and then at most one command cut
    short by the end of the data: what `aof-load-truncated` drops. False for anything malformed."""
    pos = 0
    while pos < len(tail):
        count, pos = _resp_number(tail, pos, b"*")
        if pos < 0:
            return pos == _PARTIAL
        for _ in range(count):
            length, pos = _resp_number(tail, pos, b"$")
            if pos < 0:
                return pos == _PARTIAL
            end = pos + length + 2
            if end > len(tail):
                return tail[pos + length : end] == b"\r\n"[: max(0, len(tail) - pos - length)]
            if tail[end - 2 : end] != b"\r\n":
                return False
            pos = end
    return True


_PARTIAL, _BAD = -1, -2


def _resp_number(data: bytes, pos: int, prefix: bytes) -> tuple[int, int]:
    """Read `<prefix><digits>\\r\\n` at pos: (number, position after), or (0, _PARTIAL / _BAD)."""
    end = data.find(b"\r\n", pos)
    line = data[pos:] if end < 0 else data[pos:end]
    body = line[1:].rstrip(b"\r") if end < 0 else line[1:]
    if not line.startswith(prefix[: len(line)]) or not (body.isdigit() or body == b""):
        return 0, _BAD
    if end < 0 or not body:
        return 0, _PARTIAL if end < 0 else _BAD
    return int(body), end + 2
