"""The backup data path: snapshot -> hash -> compress -> (encrypt) -> hash -> storage.

`store_snapshot` streams one RDB snapshot (or, for an AOF backup, every file of
the server's AOF, redis_dr.aof) into storage under a reserved backup id and
returns what was stored; `commit_backup` writes the manifest that makes it a
backup. Both are plain functions: retries and orchestration belong to the tasks
above them, and both may be called again after a failure (the manifest is built
from the stored snapshot alone, so a repeated commit writes the same bytes).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from redis_dr import __version__
from redis_dr.aof import AofFileType, aof_snapshot
from redis_dr.catalog import RESERVATION_NAME, Catalog, Reservation
from redis_dr.config import BackupRequest, SnapshotMode
from redis_dr.errors import ConfigError, IntegrityError, UnsupportedError
from redis_dr.manifest import MANIFEST_NAME, BackupKind, Manifest, RedisSource, StoredFile
from redis_dr.pipeline import FirstChunkClock, HeaderTap, Tally, compress, encrypt, parse_recipient, prefetch
from redis_dr.platforms.base import Platform
from redis_dr.progress import track
from redis_dr.redis.bgsave import bgsave_snapshot, platform_dump
from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.info import ServerFacts, read_server_facts
from redis_dr.redis.rdb import RDB_HEADER_SIZE, RDB_MAGIC, parse_rdb_version
from redis_dr.redis.rdb_scan import RdbCounter
from redis_dr.redis.replication import replication_snapshot
from redis_dr.storage import Storage

RDB_NAME = "dump.rdb"
#: The manifest's `mode` of an AOF backup: its files were copied.
AOF_MODE = "copy"


class StoredSnapshot(BaseModel):
    """What the data path produced: the stored objects and the server's facts at snapshot time."""

    backup_id: str
    kind: BackupKind = BackupKind.RDB
    #: How it was taken, for the manifest: stream, bgsave, or copy (the AOF files).
    mode: str
    source: RedisSource
    files: list[StoredFile]
    started_at: datetime
    completed_at: datetime
    duration_seconds: float
    wait_seconds: float | None = None
    #: AOF: whether the growing incr file was cut on a command boundary (see redis_dr.aof).
    aof_on_boundary: bool | None = None


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
    request: BackupRequest, endpoint: RedisEndpoint, platform: Platform | None = None
) -> Iterator[tuple[ServerFacts, Iterator[bytes]]]:
    """Take an RDB snapshot the way the request asks; yield the server's facts and the raw RDB chunks.

    BGSAVE reads the dump through `platform` when there is one, else from this host's disk.
    """
    client = open_client(endpoint)
    try:
        if request.mode is SnapshotMode.STREAM:
            facts = read_server_facts(client)
            with replication_snapshot(client) as stream:
                yield facts, iter(stream)
        else:
            dump = Path(request.dump_path) if request.dump_path else None
            opener = platform_dump(platform, client) if platform is not None else None
            with bgsave_snapshot(client, dump_path=dump, open_dump=opener) as snapshot:
                yield snapshot.facts, iter(snapshot)  # facts read when the save completed
    finally:
        client.close()


class _Writer:
    """Stores the objects of one backup, each through the same stages: sha256 of the raw bytes,
    compression, encryption, sha256 of the stored bytes, a create-only put and a size check."""

    def __init__(self, request: BackupRequest, storage: Storage, backup_id: str) -> None:
        self.request = request
        self.storage = storage
        self.catalog = Catalog(storage, request.instance)
        self.backup_id = backup_id
        self.recipients = list(request.encrypt_to)
        for recipient in self.recipients:
            parse_recipient(recipient)  # fail on a bad key before touching the server

    def stored_name(self, name: str) -> str:
        """The object name for a raw file `name`: with the compression and encryption suffixes."""
        stored = name + self.request.compression.suffix + (".age" if self.recipients else "")
        if stored in (MANIFEST_NAME, RESERVATION_NAME):
            raise UnsupportedError(f"a file named {name} cannot be stored beside the backup's {stored}")
        return stored

    def put(self, name: str, chunks: Iterable[bytes], *, original_name: str | None = None) -> StoredFile:
        """Stream `chunks` into the object for `name`; nothing is committed."""
        stored_name = self.stored_name(name)
        key = self.catalog.data_key(self.backup_id, stored_name)
        raw, stored = Tally(), Tally()
        data = compress(raw.tap(chunks), self.request.compression)
        if self.recipients:
            data = encrypt(data, self.recipients)
        label = f"{self.request.instance} -> {self.storage.url}" + (f" ({name})" if original_name else "")
        self.storage.put(key, track(stored.tap(data), label, None))
        info = self.storage.stat(key)
        if info.size != stored.size:
            raise IntegrityError(f"storage holds {info.size} bytes of {stored_name}, {stored.size} were sent")
        return StoredFile(
            name=stored_name,
            raw_size=raw.size,
            raw_sha256=raw.sha256,
            stored_size=stored.size,
            stored_sha256=stored.sha256,
            compression=self.request.compression,
            encrypted_to=self.recipients,
            original_name=original_name,
        )


def store_snapshot(
    request: BackupRequest,
    endpoint: RedisEndpoint,
    storage: Storage,
    reservation: Reservation,
    platform: Platform | None = None,
) -> StoredSnapshot:
    """Stream one snapshot (an RDB, or the AOF files with `kind` aof) into storage under the
    reserved backup id; nothing is committed yet. `platform` reaches the server's files."""
    writer = _Writer(request, storage, reservation.backup_id)
    writer.catalog.discard_uncommitted(reservation)  # what an earlier failed attempt of this run left
    if request.kind is BackupKind.AOF:
        if platform is None:
            raise ConfigError("an AOF backup reads the server's files: give its target (local://, docker://...)")
        return _store_aof(writer, endpoint, platform)
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    header = HeaderTap(RDB_HEADER_SIZE, check=parse_rdb_version)
    counter = RdbCounter()
    first_byte = FirstChunkClock()
    with open_snapshot(request, endpoint, platform) as (facts, chunks):
        data = counter.tap(header.tap(first_byte.tap(prefetch(chunks))))
        stored = writer.put(RDB_NAME, data)
    return StoredSnapshot(
        backup_id=reservation.backup_id,
        mode=request.mode.value,
        source=source_from_facts(facts, parse_rdb_version(header.header)).model_copy(
            update={"rdb_keyspace": counter.counts(), "rdb_count_problem": counter.unknown_reason}
        ),
        files=[stored],
        started_at=started_at,
        completed_at=datetime.now(UTC),
        duration_seconds=time.monotonic() - clock,
        wait_seconds=first_byte.at - clock if first_byte.at is not None else None,
    )


def _store_aof(writer: _Writer, endpoint: RedisEndpoint, platform: Platform) -> StoredSnapshot:
    """Copy the server's multi-part AOF (redis_dr.aof): every base and incr file, then its manifest."""
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    files: list[StoredFile] = []
    rdb_version: int | None = None
    client = open_client(endpoint)
    try:
        with aof_snapshot(client, platform) as cut:
            for part in cut.parts:
                header = HeaderTap(RDB_HEADER_SIZE)
                chunks = header.tap(prefetch(part.read()))
                files.append(writer.put(part.original_name, chunks, original_name=part.original_name))
                if part.type is AofFileType.BASE and header.header.startswith(RDB_MAGIC):
                    rdb_version = parse_rdb_version(header.header)  # an RDB preamble: what loads it
    finally:
        client.close()
    return StoredSnapshot(
        backup_id=writer.backup_id,
        kind=BackupKind.AOF,
        mode=AOF_MODE,
        source=source_from_facts(cut.facts, rdb_version),
        files=files,
        started_at=started_at,
        completed_at=datetime.now(UTC),
        duration_seconds=time.monotonic() - clock,
        wait_seconds=cut.waited,
        aof_on_boundary=cut.on_boundary,
    )


def describe_files(manifest: Manifest) -> str:
    """'RDB', or 'AOF (appendonly.aof.1.base.rdb, appendonly.aof.1.incr.aof, appendonly.aof.manifest)'."""
    if manifest.kind is not BackupKind.AOF:
        return manifest.kind.value.upper()
    return "AOF (" + ", ".join(stored.original_name or stored.name for stored in manifest.files) + ")"


def commit_backup(request: BackupRequest, storage: Storage, snapshot: StoredSnapshot) -> Manifest:
    """Write the manifest for a stored snapshot: from now on the backup exists."""
    manifest = Manifest(
        id=snapshot.backup_id,
        instance=request.instance,
        environment=request.environment,
        kind=snapshot.kind,
        mode=snapshot.mode,
        created_at=snapshot.started_at,
        completed_at=snapshot.completed_at,
        duration_seconds=round(snapshot.duration_seconds, 3),
        wait_seconds=round(snapshot.wait_seconds, 3) if snapshot.wait_seconds is not None else None,
        source=snapshot.source,
        files=snapshot.files,
        tool_version=__version__,
        labels=dict(request.labels),
    )
    Catalog(storage, request.instance).commit(manifest)
    return manifest
