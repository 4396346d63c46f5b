"""Tasks of the drill flow: one side effect each. The restore itself reuses tasks/restore.py.

The kill, the marker and the counts are safe to repeat (a dead server is killed
again as a no-op; the marker is the same SET). Starting the killed target again
is not retried: it fails with the reason its log gives.
"""

from prefect import task

from redis_dr.drill import probe
from redis_dr.drill.history import DrillRecord, History, read_history, write_record
from redis_dr.errors import RedisDRError
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.restore.file_restore import LOAD_TIMEOUT, START_TIMEOUT, wait_loaded
from redis_dr.restore.request import RestoreRequest
from redis_dr.storage import open_storage
from tasks.policy import MARGIN_SECONDS, REDIS_CHECK_SECONDS, RETRY_POLICY, storage_timeout
from tasks.restore_access import target_endpoint, target_platform

#: SIGKILL, then waiting for the process (or container) to be gone.
KILL_SECONDS = 30.0 + MARGIN_SECONDS


def _endpoint(request: RestoreRequest) -> RedisEndpoint:
    endpoint = target_endpoint(request, target_platform(request))
    if endpoint is None:
        raise RedisDRError(f"cannot tell how to reach {request.target}: give redis_url")
    return endpoint


@task(name="mark-and-count", timeout_seconds=REDIS_CHECK_SECONDS + MARGIN_SECONDS, **RETRY_POLICY)
def mark_and_count(request: RestoreRequest, tag: str) -> dict[int, int]:
    """Write the drill's marker key, then count the keys per database: just before the kill."""
    return probe.mark_and_count(_endpoint(request), tag)


@task(name="kill-target", timeout_seconds=KILL_SECONDS, **RETRY_POLICY)
def kill_target(request: RestoreRequest) -> None:
    """SIGKILL the target's server (docker kill for a container) and wait until it is gone."""
    platform = target_platform(request)
    if platform is None:
        raise RedisDRError(f"{request.target} has no process to kill: name a local, docker or compose target")
    platform.kill()


@task(name="start-target", timeout_seconds=START_TIMEOUT + LOAD_TIMEOUT + MARGIN_SECONDS)
def start_target(request: RestoreRequest) -> None:
    """Start the killed target again and wait until it has loaded what its disk holds."""
    platform = target_platform(request)
    if platform is None:
        raise RedisDRError(f"{request.target} cannot be started by redis-dr")
    platform.start(START_TIMEOUT)
    wait_loaded(platform, _endpoint(request))


@task(name="count-keys", timeout_seconds=REDIS_CHECK_SECONDS + MARGIN_SECONDS, **RETRY_POLICY)
def count_keys(request: RestoreRequest, tag: str) -> tuple[dict[int, int], bool]:
    """Keys per database after the restore, and whether the marker is still there."""
    return probe.count_and_look_for_marker(_endpoint(request), tag)


@task(name="read-drill-history", timeout_seconds=storage_timeout(12), **RETRY_POLICY)
def read_drill_history(storage_url: str, instance: str) -> History:
    """The last drills' records of the instance in the first location (unreadable ones named)."""
    storage = open_storage(storage_url)
    try:
        return read_history(storage, instance)
    finally:
        storage.close()


@task(name="record-drill", timeout_seconds=storage_timeout(4), **RETRY_POLICY)
def record_drill(storage_url: str, record: DrillRecord) -> DrillRecord:
    """Keep the drill's figures beside the backups, create-only (a repeat of the same write is done)."""
    storage = open_storage(storage_url)
    try:
        return write_record(storage, record)
    finally:
        storage.close()
