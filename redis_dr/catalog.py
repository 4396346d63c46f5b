"""The catalog: where backups live in storage, how they are reserved, committed, listed and found.

Layout: `<instance>/<backup_id>/reservation.json`, the data files, and
`<instance>/<backup_id>/manifest.json`.

Protocol:
1. Reserve: a create-only `reservation.json` claims the id for one run (two runs
   started in the same second get different ids, never the same one).
2. Store the data under the reserved id; only the run holding the reservation
   ever deletes anything under it, and never once a manifest is there.
3. Commit: stat every data object, confirm its size, write the manifest last,
   create-only. Writing the same bytes again is success (a retry whose first
   answer was lost), different bytes are refused.

Listing and resolving read manifests only, so an unfinished backup never shows;
a manifest that cannot be read is never skipped silently.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from redis_dr.durations import parse_duration
from redis_dr.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    RedisDRError,
    TransientError,
)
from redis_dr.manifest import (
    BACKUP_ID_PATTERN,
    MANIFEST_NAME,
    Manifest,
    as_utc,
    backup_id_for,
    next_backup_id,
    validate_instance_name,
)
from redis_dr.storage.base import Storage

RESERVATION_NAME = "reservation.json"
#: A selector's suffix for an age: `7d-ago` is the newest backup at least 7 days old.
AGO_SUFFIX = "-ago"
#: How many consecutive ids `reserve` tries before giving up (each is one second later).
RESERVE_ATTEMPTS = 60
_TIMESTAMP_FORMATS = ("%Y%m%d-%H%M%S", "%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S")


class Reservation(BaseModel):
    """A backup id claimed by one run; the token proves which run."""

    backup_id: str
    token: str
    host: str
    pid: int
    reserved_at: datetime

    def describe(self) -> str:
        """Who holds the reservation, for messages."""
        return f"reserved by pid {self.pid} on {self.host} at {self.reserved_at:%Y-%m-%d %H:%M:%S} UTC"


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

    def reservation_key(self, backup_id: str) -> str:
        """Key of the object that reserves a backup id for one run."""
        return f"{self.backup_prefix(backup_id)}{RESERVATION_NAME}"

    # -- reserving ----------------------------------------------------------------

    def reserve(self, now: datetime) -> Reservation:
        """Claim the id for `now` (or the next free second) with a create-only reservation."""
        backup_id = backup_id_for(now)
        for _ in range(RESERVE_ATTEMPTS):
            if not self._is_taken(backup_id):
                reservation = Reservation(
                    backup_id=backup_id,
                    token=uuid.uuid4().hex,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    reserved_at=datetime.now(UTC),
                )
                try:
                    self.storage.put_bytes(
                        self.reservation_key(backup_id), reservation.model_dump_json().encode()
                    )
                    return reservation
                except AlreadyExistsError:
                    pass  # another run claimed this second first
            backup_id = next_backup_id(backup_id)
        raise AlreadyExistsError(
            f"could not reserve a backup id for {self.instance} in {self.storage.url}: "
            f"{RESERVE_ATTEMPTS} consecutive ids from {backup_id_for(now)} are taken"
        )

    def _is_taken(self, backup_id: str) -> bool:
        """True if anything (committed or not) already lives under this backup id."""
        return next(iter(self.storage.list(self.backup_prefix(backup_id))), None) is not None

    def holder(self, backup_id: str) -> Reservation | None:
        """The reservation of a backup id, or None if it has none (backups made before reservations)."""
        data = self.reservation_bytes(backup_id)
        return None if data is None else self._parse_reservation(backup_id, data)

    def _parse_reservation(self, backup_id: str, data: bytes) -> Reservation:
        try:
            return Reservation.model_validate_json(data)
        except ValueError:
            key = self.reservation_key(backup_id)
            raise IntegrityError(f"unreadable reservation {self.storage.url}/{key}") from None

    def claim(self, backup_id: str, reservation: bytes) -> bool:
        """Reserve backup_id here with the given reservation bytes (a copy carries its source's).

        Returns True if this call made the claim, False if the same bytes were
        there already (an earlier attempt's claim). Anything else there belongs to
        another run: AlreadyExistsError, and nothing of it is touched.
        """
        outcome, found = self._write_once(self.reservation_key(backup_id), reservation)
        if outcome == "different":
            try:
                by = self._parse_reservation(backup_id, found).describe()
            except IntegrityError:
                by = "reserved by another run"
            raise AlreadyExistsError(
                f"backup id {backup_id} of {self.instance} in {self.storage.url} is {by}: not copying into it"
            )
        return outcome == "written"

    def reservation_bytes(self, backup_id: str) -> bytes | None:
        """The stored reservation of a backup id, byte for byte, or None if it has none."""
        try:
            return self.storage.get_bytes(self.reservation_key(backup_id))
        except NotFoundError:
            return None

    def _write_once(self, key: str, data: bytes) -> tuple[Literal["written", "same", "different"], bytes]:
        """Write create-only; if the key is taken, say whether it holds these bytes (and what it holds).

        The same bytes already there are this caller's own earlier write whose answer was lost.
        """
        try:
            self.storage.put_bytes(key, data)
            return "written", data
        except AlreadyExistsError:
            found = self.storage.get_bytes(key)
            return ("same" if found == data else "different"), found

    def discard_uncommitted(self, reservation: Reservation, *, release: bool = False) -> int:
        """Remove what a failed attempt of the reserving run left under its id. Returns the count.

        With `release`, the reservation goes too (the run has given up: nothing of
        it stays). Never touches a committed backup, nor an id reserved by another run.
        """
        backup_id = reservation.backup_id
        keys = [info.key for info in self.storage.list(self.backup_prefix(backup_id))]
        if self.manifest_key(backup_id) in keys:
            return 0
        holder = self.holder(backup_id)
        if holder is None or holder.token != reservation.token:
            by = holder.describe() if holder else "not reserved by this run"
            raise IntegrityError(
                f"backup id {backup_id} of {self.instance} is {by}: not deleting anything under it"
            )
        leftovers = [key for key in keys if key != self.reservation_key(backup_id)]
        for key in leftovers:
            self.storage.delete(key)
        if release:
            self.storage.delete(self.reservation_key(backup_id))
        return len(leftovers)

    # -- committing ---------------------------------------------------------------

    def commit(self, manifest: Manifest) -> None:
        """Confirm every data object's stored size, then write the manifest (create-only, idempotent)."""
        for stored in manifest.files:
            info = self.storage.stat(self.data_key(manifest.id, stored.name))
            if info.size != stored.stored_size:
                raise IntegrityError(
                    f"stored object {stored.name} of backup {manifest.id} has {info.size} bytes, "
                    f"expected {stored.stored_size}: not committing this backup"
                )
        self.put_manifest(manifest.id, manifest.to_json())

    def put_manifest(self, backup_id: str, data: bytes) -> None:
        """Write manifest bytes create-only; the same bytes already there count as written."""
        if self._write_once(self.manifest_key(backup_id), data)[0] == "different":
            raise AlreadyExistsError(
                f"backup {backup_id} of {self.instance} in {self.storage.url} is already "
                "committed with a different manifest: nothing overwritten"
            )

    # -- reading ------------------------------------------------------------------

    def backup_ids(self) -> list[str]:
        """Ids with anything stored under them (committed or not), newest first; no manifest is read."""
        names = self.storage.list_dirs(f"{self.instance}/")
        return sorted((name for name in names if BACKUP_ID_PATTERN.match(name)), reverse=True)

    def load(self, backup_id: str) -> Manifest:
        """The manifest of one backup; NotFoundError if it is not committed."""
        key = self.manifest_key(backup_id)
        try:
            data = self.storage.get_bytes(key)
        except NotFoundError:
            raise NotFoundError(
                f"no backup {backup_id} of instance {self.instance} in {self.storage.url}"
            ) from None
        manifest = Manifest.from_json(data, where=f"{self.storage.url}/{key}")
        if manifest.id != backup_id or manifest.instance != self.instance:
            raise IntegrityError(f"manifest {key} names backup {manifest.instance}/{manifest.id}")
        return manifest

    def list(self) -> Listing:
        """All committed backups, newest first; unreadable manifests are reported, not hidden."""
        listing = Listing()
        for backup_id in self.backup_ids():
            try:
                listing.manifests.append(self.load(backup_id))
            except NotFoundError:
                continue  # in progress, or a failed attempt: not a backup
            except (TransientError, AccessDeniedError):
                raise  # the location did not answer: that says nothing about the manifest
            except RedisDRError as exc:
                listing.unreadable.append(str(exc))
        return listing

    def resolve(self, selector: str, *, skip_label: str | None = None) -> Manifest:
        """Find a backup by `latest`, its id, a timestamp (the newest at or before it), or an age
        such as `7d-ago` (the newest at least that old, as the runbook's monthly test picks one).

        Reads manifests newest first and stops at the first committed one. A manifest
        on the way that cannot be read stops the search: a newer backup is never
        passed over silently for an older one. `latest` and timestamps pass over
        backups labelled `skip_label` (a restore's pre-restore checkpoints); an id never does.
        """
        selector = selector.strip()
        if BACKUP_ID_PATTERN.match(selector):
            return self.load(selector)
        ids = self.backup_ids()
        if selector == "latest":
            cutoff, wanted = None, "no backups"
        else:
            cutoff = backup_id_for(parse_selector_time(selector, datetime.now(UTC)))
            wanted = f"no backup at or before {cutoff}"
        for backup_id in ids:
            if cutoff is not None and backup_id > cutoff:
                continue
            try:
                manifest = self.load(backup_id)
            except NotFoundError:
                continue  # no manifest: not a backup
            except (TransientError, AccessDeniedError):
                raise  # the location did not answer: that says nothing about the manifest
            except RedisDRError as exc:
                raise IntegrityError(
                    f"{exc}; refusing to pass over backup {backup_id} for an older one: "
                    f"choose a backup explicitly with its id (see 'redis-dr list')"
                ) from None
            if skip_label is None or skip_label not in manifest.labels:
                return manifest
        oldest = f"; the oldest stored id is {ids[-1]}" if ids and cutoff is not None else ""
        raise NotFoundError(f"{wanted} of instance {self.instance} in {self.storage.url}{oldest}")


def check_selector(selector: str) -> None:
    """`latest`, a backup id, a UTC timestamp or an age (`7d-ago`); else ConfigError naming them."""
    selector = selector.strip()
    if selector != "latest" and not BACKUP_ID_PATTERN.match(selector):
        parse_selector_time(selector, datetime.now(UTC))


def parse_selector_time(text: str, now: datetime) -> datetime:
    """The moment a selector names: `7d-ago` counts back from `now`; else a UTC timestamp."""
    if text.endswith(AGO_SUFFIX):
        return now - parse_duration(text.removesuffix(AGO_SUFFIX))
    return parse_timestamp(text)


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
            f"{text!r} is neither 'latest', a backup id (20251015T140000Z), "
            "a UTC timestamp (20251015-140000) nor an age (7d-ago)"
        ) from None
    return as_utc(moment)
