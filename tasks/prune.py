"""Tasks of the prune flow: plan one location (reads only), apply one plan (deletes); retried only on
transient errors. Applying a plan again finishes what an interrupted attempt left (see redis_dr/prune.py).

No postponed annotations here (see tasks/backup.py).
"""

from datetime import datetime, timedelta

from prefect import Task, task

from redis_dr.catalog import Catalog
from redis_dr.prune import PrunePlan, PruneResult, apply_prune, plan_prune
from redis_dr.retention import RetentionPolicy
from redis_dr.storage import open_storage
from tasks.policy import RETRY_POLICY, STREAM_SECONDS


# Planning reads every manifest of the instance and lists each orphan; applying deletes object
# by object: thousands of requests on a slow store, so both are bounded like a stream (each
# request by its own timeout).
@task(name="plan-prune", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def plan_location(
    url: str, instance: str, policy: RetentionPolicy, now: datetime, orphan_grace: timedelta
) -> PrunePlan:
    """Decide what a prune of one location removes; change nothing."""
    storage = open_storage(url)
    try:
        return plan_prune(storage, instance, policy, now, orphan_grace=orphan_grace)
    finally:
        storage.close()


@task(name="apply-prune", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def apply_location(url: str, plan: PrunePlan) -> PruneResult:
    """Remove what the plan lists at its location (manifest first), re-checking each item."""
    storage = open_storage(url)
    try:
        return apply_prune(Catalog(storage, plan.instance), plan)
    finally:
        storage.close()


def plan_task(position: int) -> Task[[str, str, RetentionPolicy, datetime, timedelta], PrunePlan]:
    """The plan task of the location at `position` in the request (1-based): `plan-prune-<n>`."""
    return plan_location.with_options(name=f"plan-prune-{position}")


def apply_task(position: int) -> Task[[str, PrunePlan], PruneResult]:
    """The apply task of the location at `position` (1-based): `apply-prune-<n>`."""
    return apply_location.with_options(name=f"apply-prune-{position}")
