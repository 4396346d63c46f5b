"""The manifest: the versioned JSON record that makes a backup exist.

A backup lives under `<instance>/<backup_id>/` as its data object(s) plus
`manifest.json`. The manifest is written last; anything without one is not a
backup.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field, field_validator

from redis_dr.errors import ConfigError, IntegrityError
from redis_dr.pipeline import Compression
from redis_dr.redis.info import KeyspaceStats

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
BACKUP_ID_FORMAT = "%Y%m%dT%H%M%SZ"
BACKUP_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")
INSTANCE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class BackupKind(StrEnum):
    """What a backup holds."""

    RDB = "rdb"
    AOF = "aof"
    VOLUME_SNAPSHOT = "volume-snapshot"


def backup_id_for(moment: datetime) -> str:
    """The backup id for a UTC moment: `YYYYMMDDTHHMMSSZ`, which sorts as time."""
    return moment.astimezone(UTC).strftime(BACKUP_ID_FORMAT)


def backup_id_time(backup_id: str) -> datetime:
    """The UTC moment a backup id names."""
    return datetime.strptime(backup_id, BACKUP_ID_FORMAT).replace(tzinfo=UTC)


def as_utc(moment: datetime) -> datetime:
    """A time in UTC; one without a zone is taken as UTC (as manifests and runbook names write it)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def next_backup_id(backup_id: str) -> str:
    """The id one second later (used when an id is already taken)."""
    return backup_id_for(backup_id_time(backup_id) + timedelta(seconds=1))


def validate_instance_name(name: str) -> str:
    """Instance names become storage paths: lowercase letters, digits, `.`, `_`, `-`."""
    if not INSTANCE_PATTERN.match(name):
        raise ConfigError(
            f"instance name {name!r} is not allowed: use lowercase letters, digits, '.', '_' or '-'"
        )
    return name


class RedisSource(BaseModel):
    """What the server said about itself at snapshot time."""

    redis_version: str
    role: str
    replication_id: str | None = None
    replication_offset: int | None = None
    used_memory: int | None = None
    lastsave: datetime | None = None
    #: What INFO said just before the snapshot; on a busy server not exactly what the RDB holds.
    keyspace: dict[int, KeyspaceStats] = Field(default_factory=dict)
    #: Keys and expiring keys per database counted in the RDB itself as it streamed past;
    #: None when the RDB could not be counted (then only `keyspace` is known).
    rdb_keyspace: dict[int, KeyspaceStats] | None = None
    #: Why the RDB could not be counted (e.g. a module type this version does not know).
    rdb_count_problem: str | None = None
    rdb_version: int | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_keys(self) -> int:
        """Keys over all databases: counted in the RDB where it was, else as INFO said."""
        counts = self.rdb_keyspace if self.rdb_keyspace is not None else self.keyspace
        return sum(stats.key_count for stats in counts.values())


class StoredFile(BaseModel):
    """One data object of a backup, with checksums of what went in and what was stored."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a plain name inside the backup
    raw_size: int
    raw_sha256: str
    stored_size: int
    stored_sha256: str
    compression: Compression
    encrypted_to: list[str] = Field(default_factory=list)
    #: The file's name on the server, relative to its AOF directory (AOF backups); None for the RDB.
    original_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Manifest(BaseModel):
    """The record of one committed backup."""

    model_config = ConfigDict(extra="ignore")  # computed fields are written, not read back

    format_version: int = MANIFEST_VERSION
    id: str
    instance: str
    environment: str | None = None
    kind: BackupKind = BackupKind.RDB
    mode: str
    created_at: datetime
    completed_at: datetime
    duration_seconds: float
    #: Seconds of `duration_seconds` spent before the server sent its first byte (its fork
    #: and, for diskless replication, `repl-diskless-sync-delay`): not transfer time.
    wait_seconds: float | None = None
    source: RedisSource
    files: list[StoredFile]
    tool_version: str
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not BACKUP_ID_PATTERN.match(value):
            raise ValueError(f"backup id {value!r} is not YYYYMMDDTHHMMSSZ")
        return value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def raw_size(self) -> int:
        """Bytes of the original data over all files."""
        return sum(f.raw_size for f in self.files)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def stored_size(self) -> int:
        """Bytes stored over all files."""
        return sum(f.stored_size for f in self.files)

    def to_json(self) -> bytes:
        """Serialise for storage."""
        return self.model_dump_json(indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> Manifest:
        """Parse a stored manifest; IntegrityError names where it came from."""
        try:
            manifest = cls.model_validate_json(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            reason = f"{field}: {error['msg']}" if field else str(error["msg"])
            raise IntegrityError(f"unreadable manifest {where} ({reason})") from exc
        if manifest.format_version > MANIFEST_VERSION:
            raise IntegrityError(
                f"manifest {where} has format {manifest.format_version}, newer than this "
                f"redis-dr understands ({MANIFEST_VERSION}): upgrade redis-dr"
            )
        return manifest
