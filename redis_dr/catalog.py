"""The catalog: where backups live in storage, how they are committed, listed and found.

Layout: `<instance>/<backup_id>/<data files>` and `<instance>/<backup_id>/manifest.json`.
Commit protocol: data first; stat it and confirm its size; manifest last,
create-only. Listing reads manifests only, so an unfinished backup never shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis_dr.errors import ConfigError, IntegrityError, NotFoundError, RedisDRError
from redis_dr.manifest import (
    BACKUP_ID_PATTERN,
    MANIFEST_NAME,
    Manifest,
    backup_id_for,
    validate_instance_name,
)
from redis_dr.storage.base import Storage

_TIMESTAMP_FORMATS = ("%Y%m%d-%H%M%S", "%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S")


@dataclass
class Listing:
    """Every manifest found for an instance, newest first, and those that could not be read."""

    manifests: list[Manifest] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


class Catalog:
    """The backups of one instance in one storage location."""

    def __init__(self, storage: Storage, instance: str) -> None:
        self.storage = storage
        self.instance = validate_instance_name(instance)

    def backup_prefix(self, backup_id: str) -> str:
        """Key prefix that holds one backup's objects."""
        return f"{self.instance}/{backup_id}/"

    def data_key(self, backup_id: str, name: str) -> str:
        """Key of a backup's data object."""
        return f"{self.backup_prefix(backup_id)}{name}"

    def manifest_key(self, backup_id: str) -> str:
        """Key of a backup's manifest."""
        return f"{self.backup_prefix(backup_id)}{MANIFEST_NAME}"

    def is_taken(self, backup_id: str) -> bool:
        """True if anything (committed or not) already lives under this backup id."""
        return next(iter(self.storage.list(self.backup_prefix(backup_id))), None) is not None

    def new_backup_id(self, now: datetime) -> str:
        """The id for a backup starting at `now`."""
        return backup_id_for(now)

    def commit(self, manifest: Manifest) -> None:
        """Confirm every data object's stored size, then write the manifest (create-only)."""
        for stored in manifest.files:
            info = self.storage.stat(self.data_key(manifest.id, stored.name))
            if info.size != stored.stored_size:
                raise IntegrityError(
                    f"stored object {stored.name} of backup {manifest.id} has {info.size} bytes, "
                    f"expected {stored.stored_size}: not committing this backup"
                )
        self.storage.put_bytes(self.manifest_key(manifest.id), manifest.to_json())

    def discard_uncommitted(self, backup_id: str) -> int:
        """Remove objects of a backup id that has no manifest (a failed attempt). Returns count."""
        keys = [info.key for info in self.storage.list(self.backup_prefix(backup_id))]
        if self.manifest_key(backup_id) in keys:
            return 0
        for key in keys:
            self.storage.delete(key)
        return len(keys)

    def load(self, backup_id: str) -> Manifest:
        """The manifest of one backup; NotFoundError if it is not committed."""
        key = self.manifest_key(backup_id)
        try:
            data = self.storage.get_bytes(key)
        except NotFoundError:
            raise NotFoundError(
                f"no backup {backup_id} of instance {self.instance} in {self.storage.url}"
            ) from None
        manifest = Manifest.from_json(data, where=key)
        if manifest.id != backup_id or manifest.instance != self.instance:
            raise IntegrityError(f"manifest {key} names backup {manifest.instance}/{manifest.id}")
        return manifest

    def list(self) -> Listing:
        """All committed backups, newest first; unreadable manifests are reported, not hidden."""
        listing = Listing()
        for info in self.storage.list(f"{self.instance}/"):
            parts = info.key.split("/")
            if len(parts) != 3 or parts[2] != MANIFEST_NAME or not BACKUP_ID_PATTERN.match(parts[1]):
                continue
            try:
                listing.manifests.append(self.load(parts[1]))
            except RedisDRError as exc:
                listing.unreadable.append(f"{info.key}: {exc}")
        listing.manifests.sort(key=lambda m: m.id, reverse=True)
        return listing

    def resolve(self, selector: str) -> Manifest:
        """Find a backup by `latest`, its id, or a timestamp (newest at or before it)."""
        selector = selector.strip()
        if BACKUP_ID_PATTERN.match(selector):
            return self.load(selector)
        manifests = self.list().manifests
        if selector == "latest":
            if not manifests:
                raise NotFoundError(f"no backups of instance {self.instance} in {self.storage.url}")
            return manifests[0]
        moment = parse_timestamp(selector)
        for manifest in manifests:
            if manifest.id <= backup_id_for(moment):
                return manifest
        oldest = f"; the oldest is {manifests[-1].id}" if manifests else ""
        raise NotFoundError(
            f"no backup of instance {self.instance} at or before {backup_id_for(moment)}{oldest}"
        )


def parse_timestamp(text: str) -> datetime:
    """Parse a UTC timestamp as the runbooks write it (`20251015-140000`) or as ISO 8601."""
    for fmt in _TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{text!r} is neither 'latest', a backup id (20251015T140000Z) "
            "nor a UTC timestamp (20251015-140000)"
        ) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
