"""The backup data path: snapshot -> hash -> compress -> (encrypt) -> hash -> storage.

`store_snapshot` streams one RDB snapshot into storage under a reserved backup id
and returns what was stored; `commit_backup` writes the manifest that makes it a
backup. Both are plain functions: retries and orchestration belong to the tasks
above them, and both may be called again after a failure (the manifest is built
from the stored snapshot alone, so a repeated commit writes the same bytes).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from redis_dr import __version__
from redis_dr.catalog import Catalog, Reservation
from redis_dr.config import BackupRequest, SnapshotMode
from redis_dr.errors import IntegrityError
from redis_dr.manifest import BackupKind, Manifest, RedisSource, StoredFile
from redis_dr.pipeline import FirstChunkClock, HeaderTap, Tally, compress, encrypt, parse_recipient, prefetch
from redis_dr.progress import track
from redis_dr.redis.bgsave import bgsave_snapshot
from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.info import ServerFacts, read_server_facts
from redis_dr.redis.rdb import RDB_HEADER_SIZE, parse_rdb_version
from redis_dr.redis.rdb_scan import RdbCounter
from redis_dr.redis.replication import replication_snapshot
from redis_dr.storage import Storage

RDB_NAME = "dump.rdb"


class StoredSnapshot(BaseModel):
    """What the data path produced: the stored object and the server's facts at snapshot time."""

    backup_id: str
    source: RedisSource
    file: StoredFile
    started_at: datetime
    completed_at: datetime
    duration_seconds: float
    wait_seconds: float | None = None


def source_from_facts(facts: ServerFacts, rdb_version: int | None) -> RedisSource:
    """The manifest's view of the server, from INFO."""
    return RedisSource(
        redis_version=facts.redis_version,
        role=facts.role,
        replication_id=facts.replication_id,
        replication_offset=facts.replication_offset,
        used_memory=facts.used_memory,
        lastsave=facts.lastsave,
        keyspace=dict(facts.keyspace),
        rdb_version=rdb_version,
    )


def inspect_server(endpoint: RedisEndpoint) -> ServerFacts:
    """Connect, authenticate and read INFO: the cheap check before a snapshot."""
    client = open_client(endpoint)
    try:
        return read_server_facts(client)
    finally:
        client.close()


@contextlib.contextmanager
def open_snapshot(
    request: BackupRequest, endpoint: RedisEndpoint
) -> Iterator[tuple[ServerFacts, Iterator[bytes]]]:
    """Take a snapshot the way the request asks; yield the server's facts and the raw RDB chunks."""
    client = open_client(endpoint)
    try:
        if request.mode is SnapshotMode.STREAM:
            facts = read_server_facts(client)
            with replication_snapshot(client) as stream:
                yield facts, iter(stream)
        else:
            dump = Path(request.dump_path) if request.dump_path else None
            with bgsave_snapshot(client, dump_path=dump) as snapshot:
                yield snapshot.facts, iter(snapshot)  # facts read when the save completed
    finally:
        client.close()


def store_snapshot(
    request: BackupRequest,
    endpoint: RedisEndpoint,
    storage: Storage,
    reservation: Reservation,
) -> StoredSnapshot:
    """Stream one snapshot into storage under the reserved backup id; nothing is committed yet."""
    backup_id = reservation.backup_id
    catalog = Catalog(storage, request.instance)
    recipients = list(request.encrypt_to)
    for recipient in recipients:
        parse_recipient(recipient)  # fail on a bad key before touching the server
    name = RDB_NAME + request.compression.suffix + (".age" if recipients else "")
    catalog.discard_uncommitted(reservation)  # what an earlier failed attempt of this run left
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    raw, stored = Tally(), Tally()
    header = HeaderTap(RDB_HEADER_SIZE, check=parse_rdb_version)
    counter = RdbCounter()
    first_byte = FirstChunkClock()
    with open_snapshot(request, endpoint) as (facts, chunks):
        data = counter.tap(header.tap(raw.tap(first_byte.tap(prefetch(chunks)))))
        data = compress(data, request.compression)
        if recipients:
            data = encrypt(data, recipients)
        data = track(stored.tap(data), f"{request.instance} -> {storage.url}", None)
        storage.put(catalog.data_key(backup_id, name), data)
    info = storage.stat(catalog.data_key(backup_id, name))
    if info.size != stored.size:
        raise IntegrityError(f"storage holds {info.size} bytes of {name}, {stored.size} were sent")
    return StoredSnapshot(
        backup_id=backup_id,
        source=source_from_facts(facts, parse_rdb_version(header.header)).model_copy(
            update={"rdb_keyspace": counter.counts(), "rdb_count_problem": counter.unknown_reason}
        ),
        file=StoredFile(
            name=name,
            raw_size=raw.size,
            raw_sha256=raw.sha256,
            stored_size=stored.size,
            stored_sha256=stored.sha256,
            compression=request.compression,
            encrypted_to=recipients,
        ),
        started_at=started_at,
        completed_at=datetime.now(UTC),
        duration_seconds=time.monotonic() - clock,
        wait_seconds=first_byte.at - clock if first_byte.at is not None else None,
    )


def commit_backup(request: BackupRequest, storage: Storage, snapshot: StoredSnapshot) -> Manifest:
    """Write the manifest for a stored snapshot: from now on the backup exists."""
    manifest = Manifest(
        id=snapshot.backup_id,
        instance=request.instance,
        environment=request.environment,
        kind=BackupKind.RDB,
        mode=request.mode.value,
        created_at=snapshot.started_at,
        completed_at=snapshot.completed_at,
        duration_seconds=round(snapshot.duration_seconds, 3),
        wait_seconds=round(snapshot.wait_seconds, 3) if snapshot.wait_seconds is not None else None,
        source=snapshot.source,
        files=[snapshot.file],
        tool_version=__version__,
        labels=dict(request.labels),
    )
    Catalog(storage, request.instance).commit(manifest)
    return manifest
