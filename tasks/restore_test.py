"""Tasks of the restore test: choose the backup, then restore it into a throwaway Redis and check it.

The second task is safe to retry: each attempt starts a new throwaway server and
removes it, whatever happens.
"""

from prefect import task

from redis_dr.restore.source import SourceRef, choose_backup
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.restore_test.runner import RestoreTestReport, run_restore_test
from tasks.policy import RETRY_POLICY, STREAM_SECONDS, storage_timeout
from tasks.secrets import age_identities, redis_endpoint


@task(name="choose-backup", timeout_seconds=storage_timeout(4), **RETRY_POLICY)
def choose_backup_to_test(request: RestoreTestRequest) -> SourceRef:
    """The backup the request names, in the first location that holds it."""
    source = choose_backup(request.backup, list(request.storage), request.instance)
    try:
        return source.ref()
    finally:
        source.close()


@task(name="restore-and-check", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def restore_and_check(request: RestoreTestRequest, source: SourceRef) -> RestoreTestReport:
    """Load the backup into a throwaway Redis, check it, and remove the throwaway."""
    identities = age_identities(request.age_identity)
    live = redis_endpoint(request.source_url, request.password) if request.source_url else None
    opened = source.open()
    try:
        return run_restore_test(request, opened, identities, live)
    finally:
        opened.close()
