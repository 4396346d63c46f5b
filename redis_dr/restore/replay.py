"""Replay a backup's keys from a throwaway server into a live Redis, without restarting it.

`replay_keys` writes every key (of one database or all, all keys or those
matching a pattern) with `RESTORE key abs-expiry payload [REPLACE] ABSTTL`. It
needs only RESTORE, SCAN, SELECT, PING, TIME (and UNLINK to flush; INFO, if
allowed, for the version check) on the target, so it works on managed Redis,
with ACL users and TLS. Reading and writing are split over two threads
(replay_source, replay_target) and speak raw RESP; see benchmarks/replay_bench.py.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from typing import Any

import redis
from pydantic import BaseModel, Field

from redis_dr.errors import AccessDeniedError, ConfigError, RedisDRError, UnsupportedError
from redis_dr.redis.connection import REPLY_TIMEOUT, RedisEndpoint, open_client
from redis_dr.redis.errors import translate
from redis_dr.redis.info import max_rdb_version
from redis_dr.restore.replay_source import Batch, DumpBatches, command, raw_connection
from redis_dr.restore.replay_target import DbCounts, Done, PipelinedWriter, Progress

#: Batches built ahead of the writer: with `window_bytes` this bounds the memory held.
_QUEUE_DEPTH = 4
_FLUSH_COUNT = 1000


class ReplayOptions(BaseModel):
    """What to replay and how."""

    #: One database of the backup (written to the same number on the target); None: every one with keys.
    db: int | None = Field(default=None, ge=0)
    #: Only keys matching this SCAN MATCH pattern (e.g. `session:*`).
    match: str | None = None
    #: Remove the target's keys first: all of the replayed databases, or with `match` those matching it.
    flush: bool = False
    #: RESTORE without REPLACE: a key the target already holds is kept (counted, not an error).
    keep_existing: bool = False
    #: Most keys per SCAN batch, and the payload bytes a batch aims at.
    batch_keys: int = Field(default=1000, ge=1)
    batch_bytes: int = Field(default=1 << 20, ge=1024)
    #: Payload bytes sent to the target but not yet answered, at most.
    window_bytes: int = Field(default=8 << 20, ge=1 << 16)
    #: The backup's RDB version, named in messages when given.
    backup_rdb_version: int | None = None


class DbReplay(DbCounts):
    """One database's counts, with its number."""

    db: int


class ReplayResult(BaseModel):
    """What a replay did, per database, and how long it took."""

    databases: dict[int, DbReplay]
    seconds: float
    #: The target's Redis version (None when INFO is not allowed there).
    target_version: str | None
    #: RDB version of the DUMP payloads (the throwaway server's).
    payload_rdb_version: int

    @property
    def written(self) -> int:
        """Keys written in all databases."""
        return sum(d.written for d in self.databases.values())

    @property
    def payload_bytes(self) -> int:
        """DUMP payload bytes written in all databases."""
        return sum(d.payload_bytes for d in self.databases.values())


def replay_permissions(options: ReplayOptions) -> str:
    """The ACL rules a replay user needs on the target."""
    keys = f"~{options.match}" if options.match else "~*"
    return (
        f"{keys} +restore +select +scan +ping +time"
        + (" +unlink" if options.flush else "")
        + " (+info optional)"
    )


def replay_keys(
    source: redis.Redis, target: RedisEndpoint, options: ReplayOptions, progress: Progress | None = None
) -> ReplayResult:
    """Write the keys of `source` (the throwaway server) into the live server at `target`."""
    started = time.monotonic()
    key_counts = _source_databases(source, options.db)
    dbs = sorted(key_counts)
    payload_version = max_rdb_version(str(source.info("server")["redis_version"]))
    counts = {db: DbCounts() for db in dbs}
    endpoint = dataclasses.replace(target, db=0)
    client = open_client(endpoint)
    try:
        conn: Any = client.connection_pool.get_connection()
    except Exception as exc:
        raise _translate(exc, endpoint, "connect", options) from None
    try:
        target_version, clock_offset = _preflight(conn, endpoint, dbs, payload_version, options)
        selected = 0
        if options.flush:
            for db in dbs:
                if db != selected:
                    try:
                        _call(conn, endpoint, options, "SELECT", db)
                    except redis.ResponseError as exc:
                        raise _translate(exc, endpoint, "SELECT", options) from None
                    selected = db
                counts[db].removed = _flush(conn, endpoint, options)
        _stream(
            source, conn, endpoint, dbs, counts, selected, clock_offset, payload_version, options, progress
        )
        if options.match is None:  # nothing else writes in the throwaway: a key SCAN missed has expired
            for db, count in counts.items():
                count.expired += max(0, key_counts[db] - count.scanned)
    finally:
        conn.disconnect()
        client.close()
    return ReplayResult(
        databases={db: DbReplay(db=db, **c.model_dump()) for db, c in counts.items()},
        seconds=time.monotonic() - started,
        target_version=target_version,
        payload_rdb_version=payload_version,
    )


def _source_databases(source: redis.Redis, db: int | None) -> dict[int, int]:
    """Databases to replay and the keys each holds in the throwaway now."""
    keyspace = {int(name[2:]): int(stats.get("keys", 0)) for name, stats in source.info("keyspace").items()}
    if db is not None:
        return {db: keyspace.get(db, 0)}
    return {number: keys for number, keys in keyspace.items() if keys > 0}


def _call(conn: Any, endpoint: RedisEndpoint, options: ReplayOptions, *args: Any) -> Any:
    """One command on the target's connection, its failure translated."""
    try:
        conn.send_command(*args)
        return conn.read_response()
    except redis.ResponseError:
        raise
    except Exception as exc:
        raise _translate(exc, endpoint, str(args[0]), options) from None


def _preflight(
    conn: Any, endpoint: RedisEndpoint, dbs: list[int], payload_version: int, options: ReplayOptions
) -> tuple[str | None, int]:
    """Check the target before anything is written: (its version or None, its clock minus ours in ms)."""
    try:
        _call(conn, endpoint, options, "PING")
        seconds, micros = _call(conn, endpoint, options, "TIME")
        clock_offset = int(seconds) * 1000 + int(micros) // 1000 - int(time.time() * 1000)
        try:
            info = bytes(_call(conn, endpoint, options, "INFO", "server")).decode("utf-8", "replace")
            version: str | None = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in info.splitlines()
                    if line.startswith("redis_version:")
                ),
                None,
            )
        except redis.ResponseError as exc:  # INFO is optional: RESTORE's own error then names the version
            if not isinstance(exc, redis.exceptions.NoPermissionError) and "unknown" not in str(exc).lower():
                raise
            version = None
        if version is not None and max_rdb_version(version) < payload_version:
            raise UnsupportedError(
                f"Redis {version} at {endpoint.address} reads RDB versions up to {max_rdb_version(version)}; "
                f"{_payload_note(payload_version, options)}"
            )
        for db in dbs:
            if db != 0:
                _select(conn, endpoint, db, dbs, options)
        if any(db != 0 for db in dbs):
            _call(conn, endpoint, options, "SELECT", 0)
    except redis.ResponseError as exc:
        raise _translate(exc, endpoint, "preflight", options) from None
    return version, clock_offset


def _payload_note(payload_version: int, options: ReplayOptions) -> str:
    backup = f"the backup is RDB {options.backup_rdb_version}; " if options.backup_rdb_version else ""
    return (
        f"{backup}the throwaway redis-server writes its keys as RDB {payload_version}: replay with a local "
        "redis-server no newer than the target, or restore by file"
    )


def _select(conn: Any, endpoint: RedisEndpoint, db: int, dbs: list[int], options: ReplayOptions) -> None:
    try:
        _call(conn, endpoint, options, "SELECT", db)
    except redis.ResponseError as exc:
        text = str(exc).splitlines()[0]
        if "out of range" in text.lower() or "not allowed" in text.lower():
            names = ", ".join(map(str, dbs))
            raise ConfigError(
                f"Redis at {endpoint.address} has only database 0 (SELECT {db}: {text}); the backup's "
                f"keys to replay are in database(s) {names}: replay database 0 only (db=0)"
            ) from None
        raise


def _flush(conn: Any, endpoint: RedisEndpoint, options: ReplayOptions) -> int:
    """UNLINK the keys of the selected database (those matching `options.match` if set); how many."""
    removed = 0
    try:
        cursor = b"0"
        while True:
            args: list[Any] = ["SCAN", cursor] + (["MATCH", options.match] if options.match else [])
            cursor, keys = _call(conn, endpoint, options, *args, "COUNT", _FLUSH_COUNT)
            if keys:
                removed += int(_call(conn, endpoint, options, "UNLINK", *keys))
            if cursor in (b"0", 0, "0"):
                return removed
    except redis.ResponseError as exc:
        raise _translate(exc, endpoint, "flush (SCAN + UNLINK)", options) from None


def _stream(
    source: redis.Redis,
    conn: Any,
    endpoint: RedisEndpoint,
    dbs: list[int],
    counts: dict[int, DbCounts],
    selected: int,
    clock_offset: int,
    payload_version: int,
    options: ReplayOptions,
    progress: Progress | None,
) -> None:
    """Run the reading thread and the pipelined writer until every batch is answered."""
    batches: queue.Queue[Batch | Done | BaseException] = queue.Queue(maxsize=_QUEUE_DEPTH)
    stop = threading.Event()
    current_db = [selected]

    def put(item: Batch | Done | BaseException) -> None:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def produce() -> None:
        scan_conn = dump_conn = None
        try:
            scan_conn = raw_connection(source, REPLY_TIMEOUT)
            dump_conn = raw_connection(source, REPLY_TIMEOUT)
            reader = DumpBatches(
                scan_conn,
                dump_conn,
                where="(local)",
                replace=not options.keep_existing,
                match=options.match,
                batch_keys=options.batch_keys,
                batch_bytes=options.batch_bytes,
            )
            for db in dbs:
                if db != current_db[0]:
                    put(Batch(db, command(b"SELECT", b"%d" % db), 1, control=True))
                    current_db[0] = db
                for batch in reader.batches(db):
                    if stop.is_set():
                        return
                    put(batch)
            put(Done())
        except BaseException as exc:
            put(exc)
        finally:
            for c in (scan_conn, dump_conn):
                if c is not None:
                    c.disconnect()

    writer = PipelinedWriter(
        conn._sock,
        where=endpoint.address,
        counts=counts,
        acl_hint=f"the replay user needs {replay_permissions(options)}",
        payload_note=_payload_note(payload_version, options),
        window_bytes=options.window_bytes,
        reply_timeout=REPLY_TIMEOUT,
        now_ms=lambda: int(time.time() * 1000) + clock_offset,
        progress=progress,
    )
    thread = threading.Thread(target=produce, name="replay-reader", daemon=True)
    thread.start()
    try:
        writer.run(batches)
    finally:
        stop.set()
        thread.join(timeout=REPLY_TIMEOUT)


def _translate(
    exc: BaseException, endpoint: RedisEndpoint, action: str, options: ReplayOptions
) -> RedisDRError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if text.upper().startswith("NOPERM") or isinstance(exc, redis.exceptions.NoPermissionError):
        return AccessDeniedError(
            f"NOPERM: Redis at {endpoint.address} refused {action} ({text[:200]}): the replay user needs "
            f"{replay_permissions(options)}"
        )
    return translate(exc, endpoint, action)
