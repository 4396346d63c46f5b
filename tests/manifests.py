"""Small valid manifests for tests that need committed backups without a Redis server."""

from __future__ import annotations

import hashlib

from redis_dr.manifest import Manifest, RedisSource, StoredFile, backup_id_time
from redis_dr.pipeline import Compression
from redis_dr.redis.info import KeyspaceStats


def manifest_for(backup_id: str, data: bytes, *, instance: str, name: str = "dump.rdb") -> Manifest:
    """The manifest of a backup whose one data object `name` holds `data`, stored uncompressed."""
    digest = hashlib.sha256(data).hexdigest()
    moment = backup_id_time(backup_id)
    return Manifest(
        id=backup_id,
        instance=instance,
        mode="stream",
        created_at=moment,
        completed_at=moment,
        duration_seconds=1.0,
        source=RedisSource(redis_version="7.0.15", role="master", keyspace={0: KeyspaceStats(keys=1, expires=0)}),
        files=[
            StoredFile(
                name=name,
                raw_size=len(data),
                raw_sha256=digest,
                stored_size=len(data),
                stored_sha256=digest,
                compression=Compression.NONE,
            )
        ],
        tool_version="test",
    )
