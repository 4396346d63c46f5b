"""Choosing what to restore: a catalogued backup, or a file the runbook scripts made.

A catalogued backup is found by `latest`, its id or a timestamp, in the first
location that holds it. A runbook file (`redis-backup-20251015-140000.rdb.gz`,
`redis-20251015-140000.rdb`, `dump-20251015-140000.rdb`, as a local path or an
`s3://` / `gs://` object) has no manifest: it is read once to learn its size,
checksum, RDB version and key counts, which then stand in for the manifest,
so that the restore checks every byte it places against that first reading.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from redis_dr import __version__
from redis_dr.catalog import Catalog
from redis_dr.errors import AccessDeniedError, ConfigError, IntegrityError, NotFoundError, TransientError
from redis_dr.fetch import read_file
from redis_dr.manifest import BackupKind, Manifest, RedisSource, StoredFile, backup_id_for
from redis_dr.pipeline import Compression, HeaderTap, Tally, decompress, prefetch
from redis_dr.redis.rdb import RDB_HEADER_SIZE, parse_rdb_version
from redis_dr.redis.rdb_scan import RdbCounter
from redis_dr.storage import Storage, open_storage
from redis_dr.storage.location import redact_url

#: File names the runbooks' scripts wrote, with the UTC time they were taken.
RUNBOOK_FILE = re.compile(r"^(?:redis-backup-|redis-|dump-)(\d{8}-\d{6})\.rdb(\.gz)?$")
_GZIP_MAGIC = b"\x1f\x8b"
#: The label of the backup a restore takes of the target's data first. `latest` and
#: timestamps pass over these checkpoints; name one by its id to restore it.
PRE_RESTORE_LABEL = "pre-restore"


class SourceRef(BaseModel):
    """A chosen backup, small enough to pass between tasks: reopened without reading it again."""

    #: The storage location as given (reopenable; no secrets in storage URLs).
    location: str
    manifest: Manifest
    #: Storage key of a runbook file; None for a catalogued backup (keys follow the layout).
    runbook_key: str | None = None

    def open(self) -> BackupSource:
        """The source, with its storage opened."""
        return BackupSource(open_storage(self.location), self.manifest, self.runbook_key, self.location)


@dataclass(frozen=True)
class BackupSource:
    """A backup to restore: its manifest and where its bytes are."""

    storage: Storage
    manifest: Manifest
    #: Storage key of a runbook file; None for a catalogued backup (keys follow the layout).
    runbook_key: str | None = None
    #: The location's URL as given.
    location: str = ""

    @property
    def where(self) -> str:
        """Where it is, for the plan (no credentials)."""
        base = redact_url(self.location or self.storage.url)
        return f"{base.split('?')[0]}/{self.runbook_key}" if self.runbook_key is not None else base

    def ref(self) -> SourceRef:
        """What a later task needs to open it again."""
        return SourceRef(location=self.location, manifest=self.manifest, runbook_key=self.runbook_key)

    def read(self, stored: StoredFile, identities: list[Any]) -> Iterator[bytes]:
        """The original bytes of one file, each checked against the manifest (IntegrityError)."""
        return read_file(self.storage, self.manifest, stored, identities, key=self.runbook_key)

    def close(self) -> None:
        """Release the storage client."""
        self.storage.close()


def is_runbook_file(selector: str) -> bool:
    """Whether `--backup` names a file (a path, a URL, or a runbook file name) rather than a backup."""
    name = posixpath.basename(urlsplit(selector).path) if "://" in selector else Path(selector).name
    return bool(RUNBOOK_FILE.match(name)) or selector.startswith(
        ("/", "./", "../", "file://", "s3://", "gs://")
    )


def choose_backup(
    selector: str,
    storage_urls: list[str],
    instance: str,
    *,
    note: Callable[[str], None] = lambda line: None,
) -> BackupSource:
    """The backup `selector` names: a runbook file, or a catalogued backup in the first of
    `storage_urls` that holds it. Locations passed over are named through `note`."""
    if is_runbook_file(selector):
        return open_runbook_file(selector, instance)
    if not storage_urls:
        raise ConfigError("say where the backups are: --storage URL or --env-file FILE")
    for position, url in enumerate(storage_urls, start=1):
        storage = open_storage(url)
        try:
            manifest = Catalog(storage, instance).resolve(selector, skip_label=PRE_RESTORE_LABEL)
            return BackupSource(storage, manifest, location=url)
        except (NotFoundError, TransientError, AccessDeniedError) as exc:
            storage.close()
            if position == len(storage_urls):
                raise
            shown = redact_url(url)
            note(f"location {position} of {len(storage_urls)} ({shown}): {exc}; trying the next one")
    raise AssertionError("unreachable: the loop returns or raises")


def open_runbook_file(selector: str, instance: str) -> BackupSource:
    """Read a runbook's backup file once and describe it as a manifest would."""
    location, key = _file_location(selector)
    storage = open_storage(location)
    name = posixpath.basename(key)
    match = RUNBOOK_FILE.match(name)
    if match is not None:
        taken = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    else:
        taken = storage.stat(key).modified or datetime.now(UTC)
    try:
        return BackupSource(storage, _describe(storage, key, instance, taken), key, location)
    except BaseException:
        storage.close()
        raise


def _file_location(selector: str) -> tuple[str, str]:
    """The storage location (URL) holding a runbook file, and the file's key in it."""
    if selector.startswith(("s3://", "gs://", "file://")):
        parts = urlsplit(selector)
        directory, _, name = parts.path.rpartition("/")
        if not name:
            raise ConfigError(f"--backup {redact_url(selector)} names a directory, not a backup file")
        if parts.scheme == "file":
            return f"file://{directory or '/'}", name
        return urlunsplit((parts.scheme, parts.netloc, directory, parts.query, "")), name
    path = Path(selector).absolute()
    if path.is_dir():
        raise ConfigError(f"--backup {selector} is a directory, not a backup file")
    if not path.exists():
        raise NotFoundError(f"backup file {path} does not exist")
    return f"file://{path.parent}", path.name


def _describe(storage: Storage, key: str, instance: str, taken: datetime) -> Manifest:
    """Read the file through: its size and sha256 (stored and raw), RDB version and key counts."""
    stored_tally, raw_tally, counter = Tally(), Tally(), RdbCounter()
    chunks = stored_tally.tap(prefetch(storage.get(key)))
    first = next(chunks, b"")
    compression = Compression.GZIP if first.startswith(_GZIP_MAGIC) else Compression.NONE
    where = f"{redact_url(storage.url)}/{key}"
    header = HeaderTap(RDB_HEADER_SIZE, check=parse_rdb_version)  # not an RDB: refused at its header
    try:
        for _ in counter.tap(header.tap(raw_tally.tap(decompress(_chain(first, chunks), compression)))):
            pass
        rdb_version = parse_rdb_version(header.header)  # a file too short for a header raises here
    except IntegrityError as exc:
        raise IntegrityError(f"{where} is not a readable RDB backup: {exc}") from None
    if counter.counts() is None:
        raise IntegrityError(f"{where} is not a complete RDB file: {counter.unknown_reason}")
    source = RedisSource(
        redis_version="unknown",
        role="unknown",
        rdb_version=rdb_version,
        rdb_keyspace=counter.counts(),
    )
    stored = StoredFile(
        name=posixpath.basename(key),
        raw_size=raw_tally.size,
        raw_sha256=raw_tally.sha256,
        stored_size=stored_tally.size,
        stored_sha256=stored_tally.sha256,
        compression=compression,
    )
    return Manifest(
        id=backup_id_for(taken),
        instance=instance,
        kind=BackupKind.RDB,
        mode="runbook-file",
        created_at=taken,
        completed_at=taken,
        duration_seconds=0.0,
        source=source,
        files=[stored],
        tool_version=__version__,
        labels={"runbook-file": posixpath.basename(key)},
    )


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
