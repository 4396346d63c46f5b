"""Tasks of the backup flow: one side effect each, retried only on transient errors.

No postponed annotations (`from __future__ import annotations`) here or in
flows/: a served flow carries its tasks' functions by value (cloudpickle) to
the process that runs them, and that copy keeps only the globals a function's
body uses, so annotations left as strings could not be resolved there.
"""

import dataclasses
from datetime import UTC, datetime

from prefect import Task, task

from redis_dr.aof import check_aof_server
from redis_dr.backup import StoredSnapshot, commit_backup, inspect_server, store_snapshot
from redis_dr.catalog import Catalog, Reservation
from redis_dr.config import BackupRequest
from redis_dr.copy import CopyOutcome, copy_backup
from redis_dr.errors import ConfigError
from redis_dr.manifest import BackupKind, Manifest
from redis_dr.platforms.base import Platform
from redis_dr.platforms.open import open_platform
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.redis.info import ServerFacts
from redis_dr.storage import open_storage
from tasks.policy import (
    MARGIN_SECONDS,
    REDIS_CHECK_SECONDS,
    RETRY_POLICY,
    STREAM_SECONDS,
    storage_timeout,
)
from tasks.secrets import redis_endpoint, resolve_secret


def backup_platform(request: BackupRequest) -> Platform | None:
    """The platform adapter of the request's target (None without one)."""
    if request.target is None:
        return None
    connect = redis_endpoint(request.redis_url, request.password) if request.redis_url else None
    return open_platform(request.target, request.target_settings, connect=connect)


def backup_endpoint(request: BackupRequest, platform: Platform | None) -> RedisEndpoint:
    """How to reach the server: `redis_url` if given, else the address and password its target
    tells (its config's port and requirepass); the password from `password` when set."""
    if request.redis_url is not None:
        return redis_endpoint(request.redis_url, request.password)
    endpoint = platform.endpoint() if platform is not None else None
    if endpoint is None:
        where = platform.describe() if platform is not None else "the request"
        raise ConfigError(f"{where} does not tell how to reach its server: give its redis_url")
    if request.password is not None:
        endpoint = dataclasses.replace(endpoint, password=resolve_secret(request.password))
    return endpoint


@task(name="check-redis", timeout_seconds=REDIS_CHECK_SECONDS + MARGIN_SECONDS, **RETRY_POLICY)
def check_redis(request: BackupRequest) -> ServerFacts:
    """Connect, authenticate and read INFO: fail fast on a wrong address or password, and on a
    server whose AOF cannot be backed up (kind aof)."""
    endpoint = backup_endpoint(request, backup_platform(request))
    facts = inspect_server(endpoint)
    if request.kind is BackupKind.AOF:
        check_aof_server(facts, endpoint.address)
    return facts


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
    """Stream a snapshot (the RDB, or the AOF files) into the primary storage; nothing is committed yet."""
    storage = open_storage(request.storage[0])
    try:
        platform = backup_platform(request)
        endpoint = backup_endpoint(request, platform)
        return store_snapshot(request, endpoint, storage, reservation, platform)
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
