"""Snapshot by BGSAVE: make the server save, then stream the dump file it wrote.

The dump is read from this host's file system (the server's data dir is here, or
mounted here) or through the platform adapter of its target (`platform_dump`,
e.g. a Docker container). It is opened once, right after the save, and read from
that open file: a later save renames a new file over the path, but the open
descriptor keeps our inode.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis

from redis_dr.errors import (
    AccessDeniedError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    ServerFailureError,
    TransientError,
)
from redis_dr.platforms.base import Platform
from redis_dr.redis.connection import RedisEndpoint, endpoint_of
from redis_dr.redis.errors import translate
from redis_dr.redis.info import ServerFacts, read_server_facts

CHUNK_SIZE = 1 << 20


@dataclass
class DumpFile:
    """The dump our save wrote, opened: where it is (for messages), its size, its bytes (read once)."""

    where: str
    size: int
    chunks: Iterator[bytes]


#: Opens the dump once the save succeeded (given INFO read right after it); closes it on exit.
DumpOpener = Callable[[ServerFacts], AbstractContextManager[DumpFile]]


class BgsaveSnapshot:
    """The dump written by our BGSAVE: iterate once for `bytes` chunks.

    Attributes: `path` (where the dump is, for messages), `size` (bytes), `lastsave`
    (the save's LASTSAVE) and `facts` (INFO read right after the save).
    """

    def __init__(self, dump: DumpFile, facts: ServerFacts) -> None:
        self._chunks = dump.chunks
        self.path = dump.where
        self.size = dump.size
        self.facts = facts
        self.lastsave: datetime = facts.lastsave
        self._started = False

    def __repr__(self) -> str:
        return f"BgsaveSnapshot(path={self.path!r}, size={self.size}, lastsave={self.lastsave})"

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a BgsaveSnapshot can be read only once")
        self._started = True
        return self._chunks


@contextmanager
def bgsave_snapshot(
    client: redis.Redis,
    *,
    dump_path: Path | None = None,
    open_dump: DumpOpener | None = None,
    poll_interval: float = 0.2,
    timeout: float = 3600.0,
) -> Iterator[BgsaveSnapshot]:
    """Run a BGSAVE of our own and yield its dump file as a `BgsaveSnapshot`.

    Waits for any running BGSAVE or AOF rewrite first (decided from INFO), and
    counts the save as good only if `rdb_last_bgsave_status:ok` and LASTSAVE
    moved past its value before our BGSAVE. The dump is opened by `open_dump`
    (e.g. `platform_dump`), else read from `dump_path` on this host, which
    defaults to `CONFIG GET dir` + `dbfilename`. `timeout` bounds the whole wait.
    The file is closed on exit.
    """
    endpoint = endpoint_of(client)
    deadline = time.monotonic() + timeout
    if open_dump is None:
        path = dump_path or _dump_path(client, endpoint)

        def open_dump(facts: ServerFacts) -> AbstractContextManager[DumpFile]:
            return _local_dump(path, facts, endpoint)

    facts = _save(client, endpoint, deadline, poll_interval)
    with open_dump(facts) as dump:
        yield BgsaveSnapshot(dump, facts)


@contextmanager
def _local_dump(path: Path, facts: ServerFacts, endpoint: RedisEndpoint) -> Iterator[DumpFile]:
    """The dump at `path` on this host, checked to be no older than the save."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        raise NotFoundError(
            f"BGSAVE succeeded but {path} does not exist here: bgsave mode needs the server's "
            "data dir on this host (pass --dump-path, or --target, or use --mode stream)"
        ) from None
    except OSError as exc:
        raise AccessDeniedError(f"cannot read the dump file {path}: {exc.strerror or exc}") from None
    with file:
        stat = os.fstat(file.fileno())
        if stat.st_mtime < facts.lastsave.timestamp() - 1:
            raise IntegrityError(
                f"{path} is older than the save Redis at {endpoint.address} just made: is the "
                "server on this host, and is this its dump file?"
            )
        yield DumpFile(str(path), stat.st_size, _file_chunks(file))


def _file_chunks(file: io.BufferedReader) -> Iterator[bytes]:
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    while n := file.readinto(buf):
        yield bytes(view[:n])


def platform_dump(platform: Platform, client: redis.Redis) -> DumpOpener:
    """Open the dump through the target's platform adapter (e.g. inside a container).

    The file is the layout's `dbfilename` in its `dir`; a server whose running
    `dbfilename` differs (a CONFIG SET never written back) is refused, since its
    save went elsewhere. It is read whole: a later save only renames a newer
    complete dump over it.
    """
    endpoint = endpoint_of(client)

    @contextmanager
    def open_dump(facts: ServerFacts) -> Iterator[DumpFile]:
        name = platform.layout().dbfilename
        running = _config_value(client, "dbfilename")
        if running is not None and running != name:
            raise ConfigError(
                f"Redis at {endpoint.address} saves to {running} but the config of {platform.target} "
                f"says {name} (a CONFIG SET not written back?): run CONFIG REWRITE there, or fix the config"
            )
        info = platform.stat(name)
        if info is None:
            raise NotFoundError(f"BGSAVE succeeded but {platform.target} has no {name} in its data directory")
        chunks = platform.read_file(name)
        try:
            yield DumpFile(f"{name} of {platform.target}", info.size, chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    return open_dump


def _config_value(client: redis.Redis, name: str) -> str | None:
    """CONFIG GET of one setting; None where CONFIG is not allowed."""
    try:
        reply = client.config_get(name)
    except redis.ResponseError:
        return None
    for key, value in reply.items():
        if (key.decode() if isinstance(key, bytes) else key) == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _save(client: redis.Redis, endpoint: RedisEndpoint, deadline: float, poll_interval: float) -> ServerFacts:
    """Issue our own BGSAVE (after any running save) and wait for it; return INFO after it.

    Ours is the save that ran after our BGSAVE was accepted (nobody can start
    another while it runs), so success is `rdb_last_bgsave_status:ok` plus proof
    that a new save ran: the `rdb_saves` counter moved (Redis >= 7.0), or else
    LASTSAVE moved.
    """
    while True:
        facts = _wait_idle(client, endpoint, deadline, poll_interval)
        before = facts.lastsave.timestamp()
        if facts.rdb_saves is None:
            # LASTSAVE has 1 s resolution: a save started in the same second as the
            # previous one ended would not move it, so start in a later second.
            while time.time() < before + 1:
                time.sleep(min(poll_interval, before + 1 - time.time() + 0.01))
        try:
            client.bgsave()
        except redis.ResponseError as exc:
            if "IN PROGRESS" in str(exc).upper():
                continue  # someone else's save began meanwhile: wait for it, then ours
            raise translate(exc, endpoint, "BGSAVE", mode="bgsave") from None
        except Exception as exc:
            raise translate(exc, endpoint, "BGSAVE", mode="bgsave") from None
        after = _wait_idle(client, endpoint, deadline, poll_interval, saves_only=True)
        if facts.rdb_saves is not None and after.rdb_saves is not None:
            saved = after.rdb_saves > facts.rdb_saves
        else:
            saved = after.lastsave.timestamp() > before
        if after.rdb_last_bgsave_status != "ok" or not saved:
            raise ServerFailureError(
                f"BGSAVE failed on Redis at {endpoint.address} (rdb_last_bgsave_status:"
                f"{after.rdb_last_bgsave_status}): a server with save points now REFUSES WRITES "
                "(MISCONF) until a save succeeds: check its log and disk now"
            )
        return after


def _wait_idle(
    client: redis.Redis,
    endpoint: RedisEndpoint,
    deadline: float,
    poll_interval: float,
    *,
    saves_only: bool = False,
) -> ServerFacts:
    """Poll INFO until no BGSAVE (and, unless `saves_only`, no AOF rewrite) runs."""
    while True:
        facts = read_server_facts(client)
        busy = facts.rdb_bgsave_in_progress if saves_only else facts.busy_saving
        if not busy:
            return facts
        if time.monotonic() > deadline:
            raise TransientError(
                f"Redis at {endpoint.address} is still saving (BGSAVE or AOF rewrite) after the "
                "timeout: try again later"
            )
        time.sleep(poll_interval)


def _dump_path(client: redis.Redis, endpoint: RedisEndpoint) -> Path:
    """The dump file from `CONFIG GET dir` and `dbfilename`."""
    try:
        directory = client.config_get("dir").get("dir")
        name = client.config_get("dbfilename").get("dbfilename")
    except Exception as exc:
        raise translate(exc, endpoint, "CONFIG GET", mode="bgsave") from None
    if not directory or not name:
        raise NotFoundError(f"Redis at {endpoint.address} did not report dir/dbfilename: pass --dump-path")

    def text(value: object) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return Path(text(directory)) / text(name)
