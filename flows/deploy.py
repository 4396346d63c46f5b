"""Register an environment file's deployments with the configured Prefect API.

`deployment_specs` (redis_dr/deployment_plan.py) says what the file stands for;
this makes the server match it: the process work pool and each instance's lease
(a global concurrency limit of one slot) are created when missing, every
deployment is created or updated from the project's source tree (a process
worker runs it from there), and deployments of the environment that the file no
longer names are removed, so the file stays the one source of truth.

No `from __future__ import annotations` in flows/ (see flows/backup.py).
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from prefect import Flow, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags, FlowFilter, FlowFilterId
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron
from pydantic import BaseModel, Field

from flows.automations import notification_blocks, register_automations
from redis_dr.automation_plan import automation_specs
from redis_dr.deployment_plan import DeploymentSpec, deployment_specs
from redis_dr.environment import EnvironmentConfig
from redis_dr.errors import ConfigError
from redis_dr.run_tags import PROJECT_TAG, lease_name

#: The project's source tree: a process worker runs the flows from here.
ROOT = Path(__file__).resolve().parents[1]
#: Rows per read from the server (its default and largest page).
PAGE = 200
T = TypeVar("T")


class Registered(BaseModel):
    """What `register` did."""

    work_pool: str
    work_pool_created: bool
    leases: list[str]
    deployments: list[str]
    removed: list[str]
    #: The environment's automations (flows/automations.py): each name with created, updated or unchanged.
    automations: dict[str, str] = Field(default_factory=dict)
    automations_removed: list[str] = Field(default_factory=list)


def register(environment: EnvironmentConfig, source: Path = ROOT) -> Registered:
    """Create or update every deployment of the environment; remove the ones it no longer names."""
    specs = deployment_specs(environment)
    automations = automation_specs(environment)
    notification_blocks(automations)  # a block that is missing stops deploy before anything changes
    pool = environment.prefect.work_pool
    with get_client(sync_client=True) as client:
        created = _ensure_process_pool(client, pool)
        leases = sorted({lease_name(spec.environment, spec.instance) for spec in specs})
        for name in leases:
            client.upsert_global_concurrency_limit_by_name(name, 1)
    loaded: dict[str, Flow[..., Any]] = {}  # each flow file is loaded once, not once per deployment
    for spec in specs:
        if spec.entrypoint not in loaded:
            loaded[spec.entrypoint] = Flow.from_source(source=str(source), entrypoint=spec.entrypoint)  # type: ignore[assignment]
        _deploy(spec, loaded[spec.entrypoint])
    removed = _remove_stale(environment.environment, {spec.full_name for spec in specs})
    registered = register_automations(environment.environment, automations)
    return Registered(
        work_pool=pool,
        work_pool_created=created,
        leases=leases,
        deployments=[spec.full_name for spec in specs],
        removed=removed,
        automations=registered.outcomes,
        automations_removed=registered.removed,
    )


def _ensure_process_pool(client: Any, name: str) -> bool:
    """Create the process work pool if it is missing; True if it was created. ConfigError if the pool
    exists with another type."""
    from prefect.workers.process import ProcessWorker

    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        client.create_work_pool(
            WorkPoolCreate(
                name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
            )
        )
        return True
    if pool.type != "process":  # its workers would not run flows from this source tree
        raise ConfigError(
            f"work pool {name} exists with type {pool.type}: redis-dr's deployments run on a process "
            "pool; name another work_pool in the environment file (it is created as a process pool)"
        )
    return False


def _deploy(spec: DeploymentSpec, flow: Flow[..., Any]) -> None:
    """Create or update one deployment of `flow` (its schedules replaced by the spec's)."""
    deployment = flow.to_deployment(
        name=spec.name,
        work_pool_name=spec.work_pool,
        parameters=spec.parameters,
        schedules=[
            Cron(schedule.cron, timezone=schedule.timezone, parameters=schedule.parameters or None)
            for schedule in spec.schedules
        ],
        description=spec.description,
        tags=spec.tags,
    )
    deployment_id: UUID = deployment.apply(work_pool_name=spec.work_pool)  # type: ignore[union-attr,assignment]
    if not spec.schedules:  # an update leaves the schedules alone when given none: remove them
        with get_client(sync_client=True) as client:
            for schedule in client.read_deployment_schedules(deployment_id):
                client.delete_deployment_schedule(deployment_id, schedule.id)


def _remove_stale(environment: str, wanted: set[str]) -> list[str]:
    """Delete the environment's redis-dr deployments that the file no longer names.

    Every page is read (the server returns 200 rows unless told), and only the flows of these
    deployments: on a server with more flows, a deployment whose flow was not on the first page
    was taken for a stale one and deleted, the ones just registered with it.
    """
    removed: list[str] = []
    with get_client(sync_client=True) as client:
        tags = DeploymentFilterTags(all_=[PROJECT_TAG, f"env:{environment}"])
        deployments = _every_page(
            lambda offset: client.read_deployments(
                deployment_filter=DeploymentFilter(tags=tags), limit=PAGE, offset=offset
            )
        )
        flow_ids = sorted({deployment.flow_id for deployment in deployments})
        flows = {
            flow.id: flow.name
            for flow in _every_page(
                lambda offset: client.read_flows(
                    flow_filter=FlowFilter(id=FlowFilterId(any_=flow_ids)), limit=PAGE, offset=offset
                )
            )
        }
        for deployment in deployments:
            flow_name = flows.get(deployment.flow_id)
            if flow_name is None:
                continue  # its flow cannot be named: never delete what cannot be told apart
            full_name = f"{flow_name}/{deployment.name}"
            if full_name not in wanted:
                client.delete_deployment(deployment.id)
                removed.append(full_name)
    return sorted(removed)


def _every_page(read: Callable[[int], list[T]]) -> list[T]:
    """Every row of a paged read (`read(offset)` returns at most PAGE rows)."""
    rows: list[T] = []
    while True:
        page = read(len(rows))
        rows += page
        if len(page) < PAGE:
            return rows
