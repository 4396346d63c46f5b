"""AOF backups: a Redis 7 multi-part AOF copied through the server's platform adapter.

Redis keeps its AOF in `appenddirname`: a manifest, one base file (an RDB or an
AOF) and incr files that it appends to. A copy is consistent when no rewrite
swaps the files under it (REDIS_FACTS, "AOF"), so `aof_snapshot`:

1. refuses a server without AOF, or older than 7.0 (one AOF file, no manifest);
2. sets `auto-aof-rewrite-percentage 0` and puts the old value back whatever
   happens (an error, Ctrl-C), unless someone changed it meanwhile;
3. waits until no rewrite runs or is scheduled, reads the manifest, and takes
   the cut: the size of every base and incr file it lists (history files are
   left out, and so are their lines in the copied manifest);
4. hands out each file, cut at that size, plus the manifest, for the caller to
   store (redis_dr.backup streams them like an RDB).

Only the last incr file grows while it is read. It is cut at its size between
two INFO calls: when `aof_current_size` (which Redis raises after each complete
write of its AOF buffer, in its main thread) is the same in both, no write was
under way at the stat, so the cut ends on a command (and transaction) boundary.
On a server written to without pause that may not happen within a few tries;
the size stat'ed is then used as it is: any cut is a prefix of the log, and a
command cut in half at its end is dropped at load by `aof-load-truncated yes`
(Redis's default), the only setting under which this copy needs that help.
Finding the last complete command by parsing the incr file was measured at
58 MB/s for 32-byte values (255 MB/s at 400 bytes) on this machine: slower than
the rest of the data path, to save a truncation Redis handles by default.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

import redis

from redis_dr.errors import (
    AccessDeniedError,
    IntegrityError,
    NotFoundError,
    RedisDRError,
    ServerFailureError,
    TransientError,
    UnsupportedError,
)
from redis_dr.platforms.base import Platform
from redis_dr.redis import conf
from redis_dr.redis.connection import RedisEndpoint, endpoint_of, open_client
from redis_dr.redis.errors import translate
from redis_dr.redis.info import ServerFacts, info_text, parse_info

REWRITE_SETTING = "auto-aof-rewrite-percentage"
#: INFO / stat / INFO rounds tried for a cut on a write boundary before the stat'ed size is used.
QUIET_TRIES = 5
#: ACL rules an AOF backup needs (besides reading the files through the platform).
AOF_PERMISSIONS = "+info +config|get +config|set"
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class AofFileType(StrEnum):
    """The `type` of a line of the AOF manifest."""

    BASE = "b"
    HISTORY = "h"
    INCR = "i"


@dataclass(frozen=True)
class AofEntry:
    """One file the AOF manifest lists."""

    name: str
    seq: int
    type: AofFileType


# --- the manifest --------------------------------------------------------------------------


def split_args(line: bytes) -> list[bytes]:
    """Split a manifest line as Redis does (`sdssplitargs`, the same grammar as redis.conf):
    bytes pass through latin-1 one to one; ValueError when malformed."""
    return [arg.encode("latin-1") for arg in conf.split_args(line.decode("latin-1"))]


def parse_aof_manifest(data: bytes, *, where: str) -> list[AofEntry]:
    """The files a multi-part AOF manifest lists, refused (IntegrityError) where Redis would
    refuse to load it: `file <name> seq <n> type <b|h|i>` per line, `#` comments, one base."""
    entries: list[AofEntry] = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        raise IntegrityError(f"the AOF manifest {where} does not end with a newline (a partial write?)")
    for number, raw in enumerate(lines, start=1):
        if raw.startswith(b"#"):
            continue
        try:
            entries.append(_parse_line(raw.strip(b" \t\r\n")))
        except ValueError as exc:
            raise IntegrityError(f"the AOF manifest {where} is not valid at line {number}: {exc}") from None
    if not entries:
        raise IntegrityError(f"the AOF manifest {where} lists no files")
    bases = [entry for entry in entries if entry.type is AofFileType.BASE]
    if len(bases) > 1:
        raise IntegrityError(f"the AOF manifest {where} lists {len(bases)} base files")
    incr = [entry.seq for entry in entries if entry.type is AofFileType.INCR]
    if incr != sorted(set(incr)):
        raise IntegrityError(f"the AOF manifest {where} lists incr files out of sequence")
    return entries


def _parse_line(line: bytes) -> AofEntry:
    args = split_args(line)
    if len(args) < 6 or len(args) % 2:
        raise ValueError("expected 'file NAME seq N type b|h|i'")
    values: dict[str, bytes] = {}
    for key, value in zip(args[::2], args[1::2], strict=True):
        values.setdefault(key.decode("latin-1").lower(), value)  # unknown keys: later versions
    name = values.get("file", b"").decode("utf-8", "replace")
    seq = values.get("seq", b"")
    kind = values.get("type", b"")[:1].decode("latin-1")
    if not name or "/" in name:
        raise ValueError(f"{name!r} is not a file name")
    if not seq.isdigit() or int(seq) == 0:
        raise ValueError(f"seq {seq.decode('latin-1')!r} is not a positive number")
    if kind not in {t.value for t in AofFileType}:
        raise ValueError(f"unknown file type {kind!r}")
    return AofEntry(name=name, seq=int(seq), type=AofFileType(kind))


def manifest_without_history(data: bytes) -> bytes:
    """The manifest with its history lines left out: the copy holds every file it then lists."""
    kept = []
    for raw in data.splitlines(keepends=True):
        if not raw.startswith(b"#") and _parse_line(raw.strip(b" \t\r\n")).type is AofFileType.HISTORY:
            continue
        kept.append(raw)
    return b"".join(kept)


# --- the server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AofState:
    """What INFO persistence says about the AOF, beside the usual facts (one INFO call)."""

    facts: ServerFacts
    current_size: int
    rewrites: int
    rewrite_in_progress: bool
    rewrite_scheduled: bool


def check_aof_server(facts: ServerFacts, where: str) -> None:
    """Refuse, in one line, a server whose AOF cannot be backed up."""
    major = re.match(r"(\d+)\.", facts.redis_version)
    if major is None or int(major.group(1)) < 7:
        raise UnsupportedError(
            f"Redis {facts.redis_version} at {where} keeps its AOF in one file (multi-part AOF "
            "came with Redis 7.0): AOF backups need Redis 7.0 or newer; use kind rdb"
        )
    if not facts.aof_enabled:
        raise UnsupportedError(
            f"Redis at {where} runs with appendonly no: it has no AOF to back up; use kind rdb "
            "(or turn appendonly on)"
        )
    if facts.aof_last_write_status != "ok":
        raise ServerFailureError(
            f"Redis at {where} reports a failed AOF write (aof_last_write_status:"
            f"{facts.aof_last_write_status}): its AOF is not reliable; check its disk and log now"
        )


def read_aof_state(client: redis.Redis) -> AofState:
    """ServerFacts plus the AOF's size and rewrite state, from one INFO."""
    try:
        text = info_text(client, "server", "replication", "memory", "persistence", "stats", "keyspace")
    except Exception as exc:
        raise _error(exc, endpoint_of(client), "INFO") from None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and line[0] != "#")

    def number(name: str) -> int:
        value = fields.get(name, "").strip()
        return int(value) if value.isdigit() else 0

    return AofState(
        facts=parse_info(text),
        current_size=number("aof_current_size"),
        rewrites=number("aof_rewrites"),
        rewrite_in_progress=number("aof_rewrite_in_progress") == 1,
        rewrite_scheduled=number("aof_rewrite_scheduled") == 1,
    )


def _error(exc: BaseException, endpoint: RedisEndpoint, action: str) -> RedisDRError:
    """`translate`, with the AOF path's own permissions and hint."""
    error = translate(exc, endpoint, action)
    if isinstance(error, AccessDeniedError) and "NOPERM" in str(error):
        return AccessDeniedError(
            f"NOPERM: Redis at {endpoint.address} refused {action}: an AOF backup needs {AOF_PERMISSIONS}"
        )
    if isinstance(error, UnsupportedError) and action.startswith("CONFIG"):
        return UnsupportedError(
            f"Redis at {endpoint.address} does not allow CONFIG (managed Redis?): an AOF backup must "
            f"pause automatic rewrites; use kind rdb"
        )
    return error


@contextlib.contextmanager
def rewrites_paused(client: redis.Redis) -> Iterator[str]:
    """`auto-aof-rewrite-percentage 0` for the block; the previous value is put back whatever
    happens (on a fresh connection), unless someone set another one meanwhile. Yields it."""
    endpoint = endpoint_of(client)
    try:
        previous = _config_get(client, REWRITE_SETTING)
        client.config_set(REWRITE_SETTING, 0)
    except Exception as exc:
        raise _error(exc, endpoint, f"CONFIG SET {REWRITE_SETTING}") from None
    failure: BaseException | None = None
    try:
        yield previous
    except BaseException as exc:
        failure = exc
        raise
    finally:
        _put_back(endpoint, previous, failure)


def _put_back(endpoint: RedisEndpoint, previous: str, failure: BaseException | None) -> None:
    """Set the rewrite percentage back; raise loudly if that cannot be done."""
    try:
        client = open_client(endpoint)
        try:
            now = _config_get(client, REWRITE_SETTING)
            if now == "0":  # still ours: someone else's new value is left alone
                client.config_set(REWRITE_SETTING, previous)
        finally:
            client.close()
    except Exception as exc:
        cause = translate(exc, endpoint, f"CONFIG SET {REWRITE_SETTING}")
        before = f"{failure}; then also: " if isinstance(failure, RedisDRError) else ""
        raise ServerFailureError(
            f"{before}could not set {REWRITE_SETTING} back to {previous} on Redis at {endpoint.address} "
            f"({cause}): automatic AOF rewrites stay OFF until you run CONFIG SET {REWRITE_SETTING} "
            f"{previous} there"
        ) from exc


def _config_get(client: redis.Redis, name: str) -> str:
    """One setting's value (CONFIG GET replies are bytes on a bytes client)."""
    for key, value in client.config_get(name).items():
        if _text(key) == name:
            return _text(value)
    raise ServerFailureError(f"Redis at {endpoint_of(client).address} did not report {name}")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- the cut -------------------------------------------------------------------------------


@dataclass
class AofPart:
    """One file of the copy: its name in the AOF directory, the bytes to copy, and how to read them."""

    original_name: str
    size: int
    type: AofFileType | None  # None: the manifest
    read: Callable[[], Iterator[bytes]]


@dataclass
class AofCut:
    """The AOF at the cut: the server's facts (INFO right after the cut) and the files to copy.

    `facts.keyspace` is INFO's view right after the cut: on a busy server it may count
    a few writes the copied AOF does not hold (and an AOF can hold keys whose expiry
    passes before it is loaded). `on_boundary` is False when the last incr file was cut
    at its stat'ed size, which may end inside a command (see the module docstring).
    `waited` is the seconds spent waiting for a running rewrite.
    """

    facts: ServerFacts
    parts: list[AofPart]
    on_boundary: bool
    waited: float
    previous_rewrite_percentage: str


@contextlib.contextmanager
def aof_snapshot(
    client: redis.Redis, platform: Platform, *, poll_interval: float = 0.1, timeout: float = 3600.0
) -> Iterator[AofCut]:
    """Pause automatic rewrites, take the cut, yield it; the files must be read inside the block."""
    endpoint = endpoint_of(client)
    started = time.monotonic()
    check_aof_server(read_aof_state(client).facts, endpoint.address)
    with rewrites_paused(client) as previous:
        facts, parts, on_boundary = _take_cut(client, platform, started + timeout, poll_interval)
        yield AofCut(facts, parts, on_boundary, time.monotonic() - started, previous)


def _take_cut(
    client: redis.Redis, platform: Platform, deadline: float, poll_interval: float
) -> tuple[ServerFacts, list[AofPart], bool]:
    """Read the manifest while no rewrite runs and size its files (see the module docstring)."""
    endpoint = endpoint_of(client)
    layout = platform.layout()
    directory = layout.appenddirname
    while True:
        idle = _wait_no_rewrite(client, endpoint, deadline, poll_interval)
        manifest = _read_all(platform, layout.aof_manifest)
        entries = parse_aof_manifest(manifest, where=f"{layout.aof_manifest} of {platform.target}")
        files = [entry for entry in entries if entry.type is not AofFileType.HISTORY]
        for entry in files:
            _check_plain(entry.name, platform)
        growing = files[-1] if files[-1].type is AofFileType.INCR else None
        sizes = {e.name: _size(platform, f"{directory}/{e.name}") for e in files if e is not growing}
        state, on_boundary = idle, True
        for _ in range(QUIET_TRIES if growing is not None else 1):
            before = read_aof_state(client)
            if growing is not None:
                sizes[growing.name] = _size(platform, f"{directory}/{growing.name}")
            state = read_aof_state(client)
            on_boundary = growing is None or before.current_size == state.current_size
            if on_boundary or _rewrote(idle, state):
                break
        if _rewrote(idle, state):
            continue  # the files changed under us: size them again
        check_aof_server(state.facts, endpoint.address)
        manifest_name = layout.aof_manifest.rsplit("/", 1)[-1]
        _check_plain(manifest_name, platform)
        copied = manifest_without_history(manifest)
        parts = [_part(platform, f"{directory}/{e.name}", sizes[e.name], e.type) for e in files]
        parts.append(AofPart(manifest_name, len(copied), None, _constant(copied)))
        return state.facts, parts, on_boundary


def _rewrote(idle: AofState, now: AofState) -> bool:
    return now.rewrite_in_progress or now.rewrites != idle.rewrites


def _wait_no_rewrite(
    client: redis.Redis, endpoint: RedisEndpoint, deadline: float, poll_interval: float
) -> AofState:
    """Poll INFO until no AOF rewrite runs or is scheduled."""
    while True:
        state = read_aof_state(client)
        check_aof_server(state.facts, endpoint.address)
        if not state.rewrite_in_progress and not state.rewrite_scheduled:
            return state
        if time.monotonic() > deadline:
            raise TransientError(
                f"Redis at {endpoint.address} is still rewriting its AOF after the timeout: try again later"
            )
        time.sleep(poll_interval)


def _check_plain(name: str, platform: Platform) -> None:
    if not _PLAIN_NAME.match(name):
        raise UnsupportedError(
            f"the AOF file {name!r} of {platform.target} has a name redis-dr cannot store (letters, digits, "
            "'.', '_', '-' only): set a plain appendfilename"
        )


def _size(platform: Platform, name: str) -> int:
    info = platform.stat(name)
    if info is None or info.is_dir:
        raise ServerFailureError(
            f"{name} is listed in the AOF manifest of {platform.target} but is missing: the server "
            "could not load its own AOF at its next start; check its data directory"
        )
    return info.size


def _read_all(platform: Platform, name: str) -> bytes:
    try:
        return b"".join(platform.read_file(name))
    except NotFoundError:
        raise NotFoundError(
            f"{platform.target} has no AOF manifest {name}: is appendonly on, and appenddirname "
            "what its config says?"
        ) from None


def _part(platform: Platform, name: str, size: int, kind: AofFileType) -> AofPart:
    return AofPart(name.rsplit("/", 1)[-1], size, kind, lambda: read_exactly(platform, name, size))


def _constant(data: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter([data])


def read_exactly(platform: Platform, name: str, size: int) -> Iterator[bytes]:
    """The first `size` bytes of a data-dir file (it may have grown since); the read is closed after."""
    try:
        chunks = platform.read_file(name)
    except NotFoundError:
        raise TransientError(
            f"{name} of {platform.target} went away while it was copied (an AOF rewrite ran?): try again"
        ) from None
    left = size
    try:
        for chunk in chunks:
            if len(chunk) >= left:
                if left:
                    yield chunk[:left]
                left = 0
                break
            left -= len(chunk)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if left:
        raise IntegrityError(
            f"{name} of {platform.target} shrank while it was copied ({size - left} of {size} bytes)"
        )
