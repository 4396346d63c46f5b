"""Tasks of the replicate flow: list a location, copy one backup; retried only on transient errors.

No postponed annotations here (see tasks/backup.py).
"""

from prefect import task
from prefect.runtime import task_run

from redis_dr.catalog import Catalog, Listing
from redis_dr.copy import CopyOutcome, copy_backup
from redis_dr.storage import open_storage
from redis_dr.storage.location import StorageLocation
from tasks.policy import RETRY_POLICY, STREAM_SECONDS


def short_place(url: str) -> str:
    """'s3://bucket/prefix/' of a storage URL, without its options: enough to tell runs apart."""
    parsed = StorageLocation.parse(url)
    return (
        f"file://{parsed.bucket_or_path}"
        if parsed.scheme == "file"
        else (f"{parsed.scheme}://{parsed.bucket_or_path}/{parsed.prefix}")
    )


def _list_run_name() -> str:
    return f"list-{short_place(task_run.parameters['url'])}"


def _copy_run_name() -> str:
    parameters = task_run.parameters
    return f"copy-{parameters['backup_id']}-to-{short_place(parameters['destination_url'])}"


# A listing reads every manifest of the instance (one request each): thousands on a slow
# store take minutes, so it is bounded like a stream, and each request by its own timeout.
@task(name="list-backups", task_run_name=_list_run_name, timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def list_backups(url: str, instance: str) -> Listing:
    """The complete backups of an instance in one location, and the manifests that cannot be read."""
    storage = open_storage(url)
    try:
        return Catalog(storage, instance).list()
    finally:
        storage.close()


@task(name="copy-backup", task_run_name=_copy_run_name, timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def copy_one_backup(source_url: str, destination_url: str, instance: str, backup_id: str) -> CopyOutcome:
    """Copy one committed backup to one destination: verified, manifest last, resumed if interrupted."""
    source = open_storage(source_url)
    try:
        destination = open_storage(destination_url)
        try:
            return copy_backup(source, destination, instance, backup_id)
        finally:
            destination.close()
    finally:
        source.close()
