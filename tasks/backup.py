"""Tasks of the backup flow: one side effect each, retried only on transient errors.

No postponed annotations (`from __future__ import annotations`) here or in
flows/: a served flow carries its tasks' functions by value (cloudpickle) to
the process that runs them, and that copy keeps only the globals a function's
body uses, so annotations left as strings could not be resolved there.
"""

from datetime import UTC, datetime

from prefect import Task, task

from redis_dr.backup import StoredSnapshot, commit_backup, inspect_server, store_snapshot
from redis_dr.catalog import Catalog, Reservation
from redis_dr.config import BackupRequest
from redis_dr.copy import CopyOutcome, copy_backup
from redis_dr.manifest import Manifest
from redis_dr.redis.info import ServerFacts
from redis_dr.storage import open_storage
from tasks.policy import (
    MARGIN_SECONDS,
    REDIS_CHECK_SECONDS,
    RETRY_POLICY,
    STREAM_SECONDS,
    storage_timeout,
)
from tasks.secrets import redis_endpoint


@task(name="check-redis", timeout_seconds=REDIS_CHECK_SECONDS + MARGIN_SECONDS, **RETRY_POLICY)
def check_redis(request: BackupRequest) -> ServerFacts:
    """Connect, authenticate and read INFO: fail fast on a wrong address or password."""
    return inspect_server(redis_endpoint(request.redis_url, request.password))


# reserve: list one page under the id, write the reservation (another second on a clash).
@task(name="allocate-backup-id", timeout_seconds=storage_timeout(4), **RETRY_POLICY)
def allocate_backup_id(request: BackupRequest) -> Reservation:
    """Reserve a fresh backup id (UTC second) in the primary storage for this run alone."""
    storage = open_storage(request.storage[0])
    try:
        return Catalog(storage, request.instance).reserve(datetime.now(UTC))
    finally:
        storage.close()


@task(name="snapshot-to-storage", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def snapshot_to_storage(request: BackupRequest, reservation: Reservation) -> StoredSnapshot:
    """Stream a snapshot into the primary storage (the data path); nothing is committed yet."""
    storage = open_storage(request.storage[0])
    try:
        endpoint = redis_endpoint(request.redis_url, request.password)
        return store_snapshot(request, endpoint, storage, reservation)
    finally:
        storage.close()


# commit: stat the data object, write the manifest, read it back if it was there already.
@task(name="commit-manifest", timeout_seconds=storage_timeout(3), **RETRY_POLICY)
def commit_manifest(request: BackupRequest, snapshot: StoredSnapshot) -> Manifest:
    """Confirm the stored object and write the manifest: the backup now exists."""
    storage = open_storage(request.storage[0])
    try:
        return commit_backup(request, storage, snapshot)
    finally:
        storage.close()


@task(name="discard-uncommitted", timeout_seconds=storage_timeout(4), **RETRY_POLICY)
def discard_uncommitted(request: BackupRequest, reservation: Reservation) -> int:
    """A run that gave up removes what it stored under its reserved id (never a committed backup)."""
    storage = open_storage(request.storage[0])
    try:
        return Catalog(storage, request.instance).discard_uncommitted(reservation, release=True)
    finally:
        storage.close()


@task(name="copy-to-location", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def copy_to_location(request: BackupRequest, backup_id: str, destination_url: str) -> CopyOutcome:
    """Copy the committed backup from the primary location to another one, verified, manifest last."""
    source = open_storage(request.storage[0])
    try:
        destination = open_storage(destination_url)
        try:
            return copy_backup(source, destination, request.instance, backup_id)
        finally:
            destination.close()
    finally:
        source.close()


def copy_task(position: int) -> Task[[BackupRequest, str, str], CopyOutcome]:
    """The copy task for the location at `position` in the request (1-based): `copy-to-<n>`."""
    return copy_to_location.with_options(name=f"copy-to-{position}")
