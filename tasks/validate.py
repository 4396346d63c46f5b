"""Tasks of the validate flow: choose the backups of a location, then validate each one.

An integrity failure is a result (a BackupCheck with `ok` False), never an
exception: only a TransientError (a location that did not answer) is retried,
and it reruns the whole check of that backup. No postponed annotations here
(see tasks/backup.py).
"""

from prefect import task

from redis_dr.config import SecretRef
from redis_dr.manifest import Manifest
from redis_dr.storage import open_storage
from redis_dr.validate import BackupCheck, Selection, ValidateRequest, select_backups
from redis_dr.validate_backup import check_backup
from tasks.policy import RETRY_POLICY, STREAM_SECONDS
from tasks.secrets import age_identities


# One page of ids at a time, then one manifest read per backup: as many storage calls as there
# are backups, each bounded by the storage timeouts; bounded here like a stream.
@task(name="select-backups", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def select_to_validate(request: ValidateRequest, url: str) -> Selection:
    """Read the location's manifests and choose the backups to validate (selected + random sample)."""
    storage = open_storage(url)
    try:
        return select_backups(storage, request.instance, request.backup, request.sample)
    finally:
        storage.close()


@task(
    name="validate-backup",
    task_run_name="validate-{manifest.id}",
    timeout_seconds=STREAM_SECONDS,
    **RETRY_POLICY,
)
def validate_backup(url: str, manifest: Manifest, age_identity: SecretRef | None = None) -> BackupCheck:
    """Read one backup back whole and check it; age identities from `age_identity`, else
    REDIS_DR_AGE_IDENTITY."""
    identities = age_identities(age_identity)
    storage = open_storage(url)
    try:
        return check_backup(storage, manifest, identities)
    finally:
        storage.close()
