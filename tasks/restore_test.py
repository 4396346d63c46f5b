"""Tasks of the restore test: choose the backup, then restore it into a throwaway Redis and check it.

The second task is safe to retry: each attempt starts a new throwaway server and
removes it, whatever happens.
"""

import dataclasses

from prefect import task

from redis_dr.errors import RedisDRError
from redis_dr.platforms.open import open_platform
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.restore.source import SourceRef
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.restore_test.runner import RestoreTestReport, run_restore_test
from tasks.policy import RETRY_POLICY, STREAM_SECONDS, storage_timeout
from tasks.restore_access import backup_ref
from tasks.secrets import age_identities, redis_endpoint, resolve_secret


@task(name="choose-backup", timeout_seconds=storage_timeout(4), **RETRY_POLICY)
def choose_backup_to_test(request: RestoreTestRequest) -> SourceRef:
    """The backup the request names, in the first location that holds it."""
    return backup_ref(request.backup, list(request.storage), request.instance)


@task(name="restore-and-check", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def restore_and_check(request: RestoreTestRequest, source: SourceRef) -> RestoreTestReport:
    """Load the backup into a throwaway Redis, check it, and remove the throwaway."""
    identities = age_identities(request.age_identity)
    try:
        live, why_not = live_endpoint(request), None
    except RedisDRError as exc:  # the live server's target cannot be read: the test goes on without it
        live, why_not = None, f"its address is not known: {exc}"
    opened = source.open()
    try:
        return run_restore_test(request, opened, identities, live, why_not=why_not)
    finally:
        opened.close()


def live_endpoint(request: RestoreTestRequest) -> RedisEndpoint | None:
    """How to reach the live server: its URL, or what its target's config says (read only)."""
    if request.source_url is not None:
        return redis_endpoint(request.source_url, request.password)
    if request.source_target is None:
        return None
    platform = open_platform(request.source_target, request.source_target_settings)
    if platform is None:  # a redis:// target is its own URL
        return redis_endpoint(request.source_target, request.password)
    endpoint = platform.endpoint()
    if endpoint is not None and request.password is not None:
        endpoint = dataclasses.replace(endpoint, password=resolve_secret(request.password))
    return endpoint
