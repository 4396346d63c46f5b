"""The backup flow: one Redis instance, one RDB snapshot, one committed backup."""

from __future__ import annotations

import re

from prefect import flow
from prefect.artifacts import create_table_artifact

from redis_dr.config import BackupRequest
from redis_dr.manifest import Manifest
from tasks.backup import allocate_backup_id, check_redis, commit_manifest, snapshot_to_storage


@flow(name="redis-backup", flow_run_name="backup-{request.instance}", validate_parameters=True)
def backup(request: BackupRequest) -> Manifest:
    """Back up one Redis instance: check it, stream a snapshot to storage, commit its manifest."""
    check_redis(request)
    backup_id = allocate_backup_id(request)
    snapshot = snapshot_to_storage(request, backup_id)
    manifest = commit_manifest(request, snapshot)
    publish_artifact(request, manifest)
    return manifest


def artifact_key(prefix: str, instance: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{instance}".lower()).strip("-")


def publish_artifact(request: BackupRequest, manifest: Manifest) -> None:
    """Leave a table a person can read: what was backed up, where, how big, how fast."""
    stored = manifest.files[0]
    rate = manifest.raw_size / manifest.duration_seconds / 1e6 if manifest.duration_seconds else 0
    rows = [
        ("backup id", manifest.id),
        ("instance", manifest.instance),
        ("environment", manifest.environment or "-"),
        ("storage", f"{request.storage[0]} -> {manifest.instance}/{manifest.id}/{stored.name}"),
        ("mode", manifest.mode),
        (
            "redis",
            f"{manifest.source.redis_version} ({manifest.source.role}), RDB v{manifest.source.rdb_version}",
        ),
        ("keys", f"{manifest.source.total_keys:,} in {len(manifest.source.keyspace)} db(s)"),
        (
            "size",
            f"{manifest.raw_size:,} B raw, {manifest.stored_size:,} B stored ({stored.compression.value})",
        ),
        ("encrypted to", ", ".join(stored.encrypted_to) or "not encrypted"),
        ("sha256 (raw)", stored.raw_sha256),
        ("data path", f"{manifest.duration_seconds:.1f} s, {rate:.0f} MB/s"),
    ]
    create_table_artifact(
        key=artifact_key("backup", manifest.instance),
        table=[{"field": field, "value": value} for field, value in rows],
        description=f"Backup {manifest.id} of {manifest.instance}",
    )
