"""Load a backup (an RDB, or a multi-part AOF) into a throwaway local redis-server (a replay's source).

The RDB is streamed into a fresh directory as `dump.rdb`; its header is checked
against what the local `redis-server` can read before the rest is written, so a
newer file is refused at once. The server runs with `appendonly no`, `save ""`,
a random password and a unix socket in that private directory, so no other local
user can read the backup through it. Everything is removed on exit, failures included.
"""

from __future__ import annotations

import contextlib
import errno
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from redis_dr.errors import IntegrityError, StorageFullError, UnsupportedError
from redis_dr.pipeline import HeaderTap
from redis_dr.redis.info import max_rdb_version
from redis_dr.redis.rdb import RDB_HEADER_SIZE, parse_rdb_version
from redis_dr.sandbox.redis_server import RedisServer, find_redis_binary

#: Databases the throwaway accepts: a source configured with more than Redis's default 16 still loads.
THROWAWAY_DATABASES = 1024
#: Seconds allowed for the load beyond what the file's size needs at this rate (bytes/s, a slow disk).
_LOAD_GRACE = 60.0
_SLOW_LOAD_RATE = 20_000_000
_SOCKET_NAME = "redis.sock"
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


@dataclass(frozen=True)
class LoadReport:
    """What the throwaway server read: the RDB's version and size, and INFO's load counters."""

    rdb_version: int
    rdb_bytes: int
    keys_loaded: int
    keys_expired: int
    seconds: float
    redis_version: str


@dataclass
class Throwaway:
    """A loaded throwaway server: `server`, its `load` report, and `client()` over its unix socket."""

    server: RedisServer
    load: LoadReport
    #: The server's unix socket, in a private directory of its own (faster than loopback TCP).
    socket_path: Path

    def client(self, db: int = 0, **kwargs: object) -> redis.Redis:
        """A redis-py client on the unix socket (loopback TCP if the path was too long), bytes replies."""
        if not self.socket_path.exists():
            return self.server.client(db=db, **kwargs)
        return redis.Redis(
            unix_socket_path=str(self.socket_path),
            password=self.server.password,
            db=db,
            **kwargs,  # type: ignore[arg-type]
        )


def local_redis_version() -> str:
    """The version of the local redis-server (`redis-server --version`: `... v=7.0.15 ...`)."""
    out = subprocess.run(
        [find_redis_binary(), "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    match = re.search(r"v=(\d+\.\d+\.\d+)", out)
    if match is None:
        raise UnsupportedError(f"cannot read the local redis-server's version from {out.strip()[:80]!r}")
    return match.group(1)


@contextlib.contextmanager
def load_throwaway(
    rdb_chunks: Iterable[bytes],
    *,
    work_dir: Path | None = None,
    startup_timeout: float | None = None,
    socket_only: bool = False,
) -> Iterator[Throwaway]:
    """Write `rdb_chunks` as dump.rdb in a new directory under `work_dir`, start a redis-server on it,
    wait for `loading:0`, and yield the loaded `Throwaway`; stop it and remove the directory on exit.

    `socket_only`: no TCP port and no password, only the unix socket in its private 0700
    directory (a URL without a secret, for a data check run as another program).

    Raises UnsupportedError (both versions named) before writing more than the header when the
    file is newer than the local redis-server reads, IntegrityError when the server cannot load
    it (its log's last line given), StorageFullError when `work_dir` fills up.
    """
    with _throwaway(work_dir, startup_timeout, socket_only=socket_only) as (data_dir, start):
        version, size = _write_rdb(rdb_chunks, data_dir / "dump.rdb", local_redis_version())
        yield start(version, size, {"appendonly": "no"})


@contextlib.contextmanager
def load_throwaway_aof(
    files: Iterable[tuple[str, Iterable[bytes]]],
    *,
    work_dir: Path | None = None,
    startup_timeout: float | None = None,
    socket_only: bool = False,
) -> Iterator[Throwaway]:
    """The same for a multi-part AOF backup: `files` are (name in the AOF directory, chunks), the
    manifest among them (`<appendfilename>.manifest`); the server starts with appendonly on."""
    with _throwaway(work_dir, startup_timeout, socket_only=socket_only) as (data_dir, start):
        aof_dir = data_dir / "appendonlydir"
        aof_dir.mkdir()
        version, size, manifest = 0, 0, None
        for name, chunks in files:
            if name.endswith(".manifest"):
                manifest = name
            if name.endswith(".rdb"):
                file_version, file_size = _write_rdb(chunks, aof_dir / name, local_redis_version())
                version = max(version, file_version)
            else:
                file_size = write_plain(chunks, aof_dir / name)
            size += file_size
        if manifest is None:
            raise IntegrityError("the AOF backup holds no manifest (<appendfilename>.manifest)")
        config = {
            "appendonly": "yes",
            "appenddirname": "appendonlydir",
            "appendfilename": manifest.removesuffix(".manifest"),
            "aof-load-truncated": "yes",
        }
        yield start(version, size, config)


@contextlib.contextmanager
def _throwaway(
    work_dir: Path | None, startup_timeout: float | None, *, socket_only: bool = False
) -> Iterator[tuple[Path, Callable[[int, int, dict[str, str]], Throwaway]]]:
    """A private data directory, and a function that starts the server on what was written there."""
    local_version = local_redis_version()
    data_dir = Path(tempfile.mkdtemp(prefix="redis-dr-throwaway-", dir=work_dir))
    socket_dir = Path(tempfile.mkdtemp(prefix="redis-dr-sock-"))  # short: sun_path holds 108 bytes
    socket_path = socket_dir / _SOCKET_NAME
    servers: list[RedisServer] = []

    def start(rdb_version: int, size: int, persistence: dict[str, str]) -> Throwaway:
        # No LZF for DUMP payloads: it halved the throwaway's CPU per key (benchmarks/replay_bench.py).
        config = {"databases": str(THROWAWAY_DATABASES), "rdbcompression": "no", **persistence}
        if len(str(socket_path)) < _MAX_SOCKET_PATH:
            config.update(unixsocket=str(socket_path), unixsocketperm="700")
        elif socket_only:
            raise UnsupportedError(f"the socket path {socket_path} is too long for a unix socket")
        server = RedisServer(
            config,
            password=None if socket_only else secrets.token_hex(16),
            data_dir=data_dir,
            tcp=not socket_only,
            die_with_parent=True,  # no throwaway outlives a killed run
        )
        servers.append(server)
        started = time.monotonic()
        timeout = startup_timeout or _LOAD_GRACE + size / _SLOW_LOAD_RATE
        try:
            server.start(timeout=timeout)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            raise IntegrityError(_load_failure(server, exc)) from None
        persistence_info = server.client().info("persistence")
        if int(persistence_info.get("loading", 0)) != 0:  # start() waits for PING, which LOADING refuses
            raise IntegrityError("the throwaway redis-server answered PING while still loading")
        return Throwaway(
            server,
            LoadReport(
                rdb_version=rdb_version,
                rdb_bytes=size,
                keys_loaded=int(persistence_info.get("rdb_last_load_keys_loaded", 0)),
                keys_expired=int(persistence_info.get("rdb_last_load_keys_expired", 0)),
                seconds=time.monotonic() - started,
                redis_version=local_version,
            ),
            socket_path,
        )

    try:
        yield data_dir, start
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(socket_dir, ignore_errors=True)


def write_plain(chunks: Iterable[bytes], path: Path) -> int:
    """Write the chunks to `path`; its size."""
    size = 0
    try:
        with path.open("xb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(
                f"no space left in {path.parent.parent} for the throwaway copy of the backup "
                f"({size} bytes written): free space there, or set TMPDIR to a directory with more room"
            ) from None
        raise
    return size


def _write_rdb(chunks: Iterable[bytes], path: Path, local_version: str) -> tuple[int, int]:
    """Write the chunks to `path`, refusing a newer RDB as soon as its header is in; (version, size)."""
    newest = max_rdb_version(local_version)

    def readable(head: bytes) -> None:
        version = parse_rdb_version(head)
        if version > newest:
            raise UnsupportedError(
                f"the backup is RDB version {version}, newer than the local redis-server "
                f"{local_version} reads (up to RDB {newest}): install a redis-server that "
                "reads it to replay this backup"
            )

    header = HeaderTap(RDB_HEADER_SIZE, check=readable)
    size = write_plain(header.tap(chunks), path)
    return parse_rdb_version(header.header), size  # a file too short for a header raises here


def _load_failure(server: RedisServer, exc: BaseException) -> str:
    """One line saying why the throwaway server did not come up with the backup loaded."""
    lines = [line for line in server.log().splitlines() if line.strip()]
    reason = next(
        (line for line in reversed(lines) if "#" in line or "Bad file format" in line or "Internal" in line),
        lines[-1] if lines else str(exc) or type(exc).__name__,
    )
    reason = reason.split(" # ", 1)[-1].split(" * ", 1)[-1].strip()
    return f"the throwaway redis-server could not load the backup: {reason[:200]}"
