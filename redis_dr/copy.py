"""Copying one committed backup from one location to another: verified, manifest last, idempotent.

The backup's data objects are copied first, server-side where both locations are
the same service (the bytes never pass through this process), streamed in
constant memory otherwise. Each object is confirmed at the destination before
the manifest is written there, with the same bytes as the source's manifest, so
both locations hold the same backup:

- streamed: the bytes sent are hashed on the way and must match the manifest's
  size and sha256; the destination's size must match too (and the object stores
  check their own per-part checksums on upload);
- server-side: the copy is read back from the destination and hashed.

The copy first claims the backup id at the destination with the source's own
reservation: an id reserved there by another run is refused, and nothing under it
is read or deleted; a failed attempt that leaves nothing else there takes its
claim back. Running it again after any failure finishes the job: objects
already at the destination with the right size and checksum are kept, a
destination that holds the manifest already reports "already-present". A failed copy leaves no manifest
at the destination, so nothing half-copied is ever listed there.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from typing import Literal

from pydantic import BaseModel

from redis_dr.catalog import Catalog, Reservation
from redis_dr.errors import IntegrityError, NotFoundError, RedisDRError
from redis_dr.manifest import Manifest, StoredFile
from redis_dr.pipeline import Tally
from redis_dr.storage import Storage


class CopyOutcome(BaseModel):
    """What copying one backup to one destination did."""

    destination: str
    backup_id: str
    status: Literal["copied", "already-present"]
    bytes: int
    server_side: bool
    seconds: float


def copy_backup(source: Storage, destination: Storage, instance: str, backup_id: str) -> CopyOutcome:
    """Copy the committed backup `instance/backup_id` from source to destination, verified."""
    started = time.monotonic()
    origin, target = Catalog(source, instance), Catalog(destination, instance)
    manifest_key = origin.manifest_key(backup_id)
    try:
        manifest_bytes = source.get_bytes(manifest_key)
    except NotFoundError:
        raise NotFoundError(f"no backup {backup_id} of instance {instance} in {source.url} to copy") from None
    manifest = Manifest.from_json(manifest_bytes, where=f"{source.url}/{manifest_key}")
    if _exists(destination, manifest_key):
        target.put_manifest(backup_id, manifest_bytes)  # refuses a different manifest under this id
        return _outcome(destination, backup_id, "already-present", 0, False, started)
    reservation = origin.reservation_bytes(backup_id) or _claim_for(manifest_bytes, manifest)
    claimed = target.claim(backup_id, reservation)
    copied, server_side = 0, False
    try:
        for stored in manifest.files:
            key = origin.data_key(backup_id, stored.name)
            if _verified_copy_exists(destination, key, stored):
                continue
            server_side = _copy_object(source, destination, key, stored) or server_side
            copied += stored.stored_size
        target.put_manifest(backup_id, manifest_bytes)
    except BaseException:
        if claimed:
            _release_if_empty(target, backup_id)
        raise
    return _outcome(destination, backup_id, "copied", copied, server_side, started)


def _release_if_empty(catalog: Catalog, backup_id: str) -> None:
    """Take back a claim this attempt made when it left nothing else under the id."""
    with contextlib.suppress(RedisDRError):
        keys = [info.key for info in catalog.storage.list(catalog.backup_prefix(backup_id))]
        if keys == [catalog.reservation_key(backup_id)]:
            catalog.storage.delete(keys[0])


def _claim_for(manifest_bytes: bytes, manifest: Manifest) -> bytes:
    """A reservation for a backup made before reservations existed: the same bytes on every try."""
    return Reservation(
        backup_id=manifest.id,
        token="copy-" + hashlib.sha256(manifest_bytes).hexdigest()[:32],
        host="copy",
        pid=0,
        reserved_at=manifest.created_at,
    ).model_dump_json().encode()


def _exists(storage: Storage, key: str) -> bool:
    try:
        storage.stat(key)
    except NotFoundError:
        return False
    return True


def _copy_object(source: Storage, destination: Storage, key: str, stored: StoredFile) -> bool:
    """Copy one data object and confirm it at the destination; True if it was copied server-side."""
    info = destination.copy_from(source, key, key)
    server_side = info is not None
    if info is None:
        sent = Tally()
        info = destination.put(key, sent.tap(source.get(key)))
        intact = (sent.size, sent.sha256) == (stored.stored_size, stored.stored_sha256)
        problem = f"{source.url}/{key} does not match its manifest (size or sha256): the source is corrupt"
    else:
        intact = _matches(destination, key, stored)
        problem = f"the server-side copy {destination.url}/{key} does not match its manifest"
    if intact and info.size != stored.stored_size:
        intact = False
        problem = f"{destination.url}/{key} holds {info.size} bytes, expected {stored.stored_size}"
    if not intact:
        destination.delete(key)
        raise IntegrityError(f"{problem}; nothing committed at {destination.url}")
    return server_side


def _verified_copy_exists(destination: Storage, key: str, stored: StoredFile) -> bool:
    """True if an earlier attempt already placed this object intact; a damaged one is removed."""
    try:
        info = destination.stat(key)
    except NotFoundError:
        return False
    if info.size == stored.stored_size and _matches(destination, key, stored):
        return True
    destination.delete(key)  # no manifest is there, so this is no backup: an unfinished copy
    return False


def _matches(storage: Storage, key: str, stored: StoredFile) -> bool:
    """Read an object back and compare its size and sha256 with the manifest's."""
    tally = Tally()
    for _ in tally.tap(storage.get(key)):
        pass
    return (tally.size, tally.sha256) == (stored.stored_size, stored.stored_sha256)


def _outcome(
    destination: Storage,
    backup_id: str,
    status: Literal["copied", "already-present"],
    copied: int,
    server_side: bool,
    started: float,
) -> CopyOutcome:
    return CopyOutcome(
        destination=destination.url,
        backup_id=backup_id,
        status=status,
        bytes=copied,
        server_side=server_side,
        seconds=round(time.monotonic() - started, 3),
    )
