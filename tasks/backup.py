"""Tasks of the backup flow."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import task

from redis_dr.backup import StoredSnapshot, commit_backup, inspect_server, store_snapshot
from redis_dr.catalog import Catalog
from redis_dr.config import BackupRequest
from redis_dr.manifest import Manifest, next_backup_id
from redis_dr.redis.info import ServerFacts
from redis_dr.storage import open_storage
from tasks.policy import RETRY_POLICY
from tasks.secrets import redis_endpoint


@task(name="check-redis", timeout_seconds=60, **RETRY_POLICY)
def check_redis(request: BackupRequest) -> ServerFacts:
    """Connect, authenticate and read INFO: fail fast on a wrong address or password."""
    return inspect_server(redis_endpoint(request.redis_url, request.password))


@task(name="allocate-backup-id", timeout_seconds=60, **RETRY_POLICY)
def allocate_backup_id(request: BackupRequest) -> str:
    """A fresh backup id (UTC second) that nothing in the primary storage uses yet."""
    storage = open_storage(request.storage[0])
    try:
        catalog = Catalog(storage, request.instance)
        backup_id = catalog.new_backup_id(datetime.now(UTC))
        while catalog.is_taken(backup_id):
            time.sleep(0.2)
            backup_id = max(next_backup_id(backup_id), catalog.new_backup_id(datetime.now(UTC)))
        return backup_id
    finally:
        storage.close()


@task(name="snapshot-to-storage", timeout_seconds=6 * 3600, **RETRY_POLICY)
def snapshot_to_storage(request: BackupRequest, backup_id: str) -> StoredSnapshot:
    """Stream a snapshot into the primary storage (the data path); nothing is committed yet."""
    storage = open_storage(request.storage[0])
    try:
        endpoint = redis_endpoint(request.redis_url, request.password)
        return store_snapshot(request, endpoint, storage, backup_id)
    finally:
        storage.close()


@task(name="commit-manifest", timeout_seconds=120, **RETRY_POLICY)
def commit_manifest(request: BackupRequest, snapshot: StoredSnapshot) -> Manifest:
    """Confirm the stored object and write the manifest: the backup now exists."""
    storage = open_storage(request.storage[0])
    try:
        return commit_backup(request, storage, snapshot)
    finally:
        storage.close()
