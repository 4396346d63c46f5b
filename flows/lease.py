"""One operation per instance: every flow of an instance runs its work under one lease.

The lease is a Prefect global concurrency limit of one slot, `redis-dr-<env>-<instance>`
(`redis-dr deploy` creates it; a run creates it when it is missing). A backup, prune,
replication, validation or restore of the instance started while another holds it
waits, after saying which run holds it, up to `LEASE_WAIT_SECONDS`, then fails
naming that run. The slot is held under a lease that the run renews while it works:
the server revokes the lease of a run that died (`LEASE_SECONDS`). Terminal runs on a
temporary API, which revokes nothing, use a lock file of this host instead
(`REDIS_DR_LEASE=host`): it goes with its process.

No `from __future__ import annotations` in flows/ (see flows/backup.py).
"""

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from redis_dr.errors import TransientError
from redis_dr.host_lease import HOST_MODE, LEASE_MODE_ENV, host_lease
from redis_dr.run_tags import instance_tag, lease_name

#: How long a run waits for another run of its instance (REDIS_DR_LEASE_WAIT overrides, in seconds).
LEASE_WAIT_SECONDS = float(os.environ.get("REDIS_DR_LEASE_WAIT", 3 * 3600))
#: The first try: a run that does not get the slot at once says whom it waits for, then waits.
FIRST_TRY_SECONDS = 1.0
#: A dead run's slot is free again after this long without renewal (the server revokes it).
LEASE_SECONDS = 60.0


class InstanceBusyError(TransientError):
    """Another run of the same instance held its lease for longer than this run would wait."""


@contextlib.contextmanager
def instance_lease(environment: str | None, instance: str) -> Iterator[None]:
    """Hold the instance's lease for the block; wait (saying for whom) while another run holds it."""
    log = get_run_logger()
    name = lease_name(environment, instance)
    try:
        if os.environ.get(LEASE_MODE_ENV) == HOST_MODE:
            held = _on_this_host(name, log)
        else:
            held = _on_the_server(name, instance_tag(environment, instance), log)
    except TimeoutError as exc:
        raise InstanceBusyError(
            f"instance {instance} ({environment or 'no environment'}) is busy: {exc}; waited "
            f"{_minutes(LEASE_WAIT_SECONDS)} for it, nothing was done"
        ) from None
    with held:
        log.info("holding %s: no other run of %s works on it until this one ends", name, instance)
        try:
            yield
        finally:
            log.info("releasing %s", name)


def _on_this_host(name: str, log: Any) -> contextlib.ExitStack:
    """The lease as a lock file of this host (terminal runs on a temporary API)."""
    context = FlowRunContext.get()
    holder = f"run {context.flow_run.name!r}" if context and context.flow_run else "a run"

    def waiting(by: str) -> None:
        log.info("waiting for %s: held by %s", name, by)

    held = contextlib.ExitStack()
    held.enter_context(host_lease(name, holder, LEASE_WAIT_SECONDS, waiting))
    return held


def _on_the_server(name: str, tag: str, log: Any) -> contextlib.ExitStack:
    """The lease as the Prefect server's one-slot global concurrency limit (TimeoutError: not had)."""
    with get_client(sync_client=True) as client:
        _ensure_limit(client, name)
        me = _tag_this_run(client, tag)
    held = contextlib.ExitStack()
    try:
        held.enter_context(_slot(name, FIRST_TRY_SECONDS))
    except TimeoutError:
        with get_client(sync_client=True) as client:
            log.info("waiting for %s: %s", name, _holders(client, tag, me))
        try:
            held.enter_context(_slot(name, LEASE_WAIT_SECONDS))
        except TimeoutError:
            with get_client(sync_client=True) as client:
                raise TimeoutError(_holders(client, tag, me)) from None
    return held


def _slot(name: str, timeout: float) -> contextlib.AbstractContextManager[None]:
    """The lease's one slot, waited for up to `timeout` seconds (TimeoutError after)."""
    return concurrency(name, occupy=1, timeout_seconds=timeout, lease_duration=LEASE_SECONDS, strict=True)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _ensure_limit(client: Any, name: str) -> None:
    """The one-slot global concurrency limit of the instance, created if it is missing."""
    try:
        client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        with contextlib.suppress(ObjectAlreadyExists):  # another run created it meanwhile
            client.upsert_global_concurrency_limit_by_name(name, 1)


def _tag_this_run(client: Any, tag: str) -> UUID | None:
    """Tag this flow run with its instance, so that a run waiting for it can name it."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    tags = client.read_flow_run(context.flow_run.id).tags  # the server's, not the engine's copy
    if tag not in tags:
        client.update_flow_run(context.flow_run.id, tags=[*tags, tag])
    return context.flow_run.id


def _holders(client: Any, tag: str, me: UUID | None) -> str:
    """The runs of the instance that are running now, for messages."""
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[tag]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
            id=FlowRunFilterId(not_any_=[me]) if me else None,
        ),
        limit=5,
    )
    if not runs:
        return "held by a run that is no longer running (its lease expires within 5 min)"
    return "running now: " + ", ".join(f"{run.name!r} ({run.id})" for run in runs)
