"""Snapshot by BGSAVE: make the server save, then stream the dump file it wrote.

The server must be on this host (or its data dir mounted here). The dump is
opened once, right after the save, and read from that file descriptor: a later
save renames a new file over the path, but the open descriptor keeps our inode.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import redis

from redis_dr.errors import (
    AccessDeniedError,
    IntegrityError,
    NotFoundError,
    ServerFailureError,
    TransientError,
)
from redis_dr.redis.connection import RedisEndpoint, endpoint_of
from redis_dr.redis.errors import translate
from redis_dr.redis.info import ServerFacts, read_server_facts

CHUNK_SIZE = 1 << 20


class BgsaveSnapshot:
    """The dump written by our BGSAVE: iterate once for 1 MiB `bytes` chunks.

    Attributes: `path`, `size` (bytes, from the open file), `lastsave` (the
    save's LASTSAVE) and `facts` (INFO read right after the save).
    """

    def __init__(self, file: io.BufferedReader, path: Path, facts: ServerFacts) -> None:
        self._file = file
        self.path = path
        self.facts = facts
        self.lastsave: datetime = facts.lastsave
        self.size = os.fstat(file.fileno()).st_size
        self._started = False

    def __repr__(self) -> str:
        return f"BgsaveSnapshot(path={str(self.path)!r}, size={self.size}, lastsave={self.lastsave})"

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a BgsaveSnapshot can be read only once")
        self._started = True
        buf = bytearray(CHUNK_SIZE)
        view = memoryview(buf)
        while n := self._file.readinto(buf):
            yield bytes(view[:n])


@contextmanager
def bgsave_snapshot(
    client: redis.Redis,
    *,
    dump_path: Path | None = None,
    poll_interval: float = 0.2,
    timeout: float = 3600.0,
) -> Iterator[BgsaveSnapshot]:
    """Run a BGSAVE of our own and yield its dump file as a `BgsaveSnapshot`.

    Waits for any running BGSAVE or AOF rewrite first (decided from INFO), and
    counts the save as good only if `rdb_last_bgsave_status:ok` and LASTSAVE
    moved past its value before our BGSAVE. `dump_path` defaults to
    `CONFIG GET dir` + `dbfilename`. `timeout` bounds the whole wait.
    The file is closed on exit.
    """
    endpoint = endpoint_of(client)
    deadline = time.monotonic() + timeout
    path = dump_path or _dump_path(client, endpoint)
    facts = _save(client, endpoint, deadline, poll_interval)
    try:
        file = path.open("rb")
    except FileNotFoundError:
        raise NotFoundError(
            f"BGSAVE succeeded but {path} does not exist here: bgsave mode needs the server's "
            "data dir on this host (pass --dump-path, or use --mode stream)"
        ) from None
    except OSError as exc:
        raise AccessDeniedError(f"cannot read the dump file {path}: {exc.strerror or exc}") from None
    with file:
        mtime = os.fstat(file.fileno()).st_mtime
        if mtime < facts.lastsave.timestamp() - 1:
            raise IntegrityError(
                f"{path} is older than the save Redis at {endpoint.address} just made: is the "
                "server on this host, and is this its dump file?"
            )
        yield BgsaveSnapshot(file, path, facts)


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
