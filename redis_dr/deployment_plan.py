"""Which Prefect deployments an environment file stands for: pure data, no Prefect import.

One deployment per flow per instance of the environment, named `<environment>-<instance>`
(`production-sessions`; the AOF backup `production-sessions-aof`), with its flow's
request as parameters, its cron schedule in the environment's time zone, its work
pool and tags. `flows/deploy.py` registers them; the tests compare the server's
deployments with this plan, so both read the same source of truth.

Every run of one instance's flows takes the same lease (`lease_name`): a backup, a
prune, a replication, a validation and a restore of one instance never overlap.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from redis_dr.environment import EnvironmentConfig, InstanceConfig
from redis_dr.manifest import BackupKind
from redis_dr.run_tags import PROJECT_TAG, PROTECTED_TAG, instance_tag
from redis_dr.schedule_gaps import overdue_after

#: Flow name -> entrypoint (path:function) in the project's source tree.
ENTRYPOINTS = {
    "redis-backup": "flows/backup.py:backup",
    "redis-restore": "flows/restore.py:restore",
    "redis-prune": "flows/prune.py:prune",
    "redis-replicate": "flows/replicate.py:replicate",
    "redis-validate": "flows/validate.py:validate",
    "redis-restore-test": "flows/restore_test.py:restore_test",
    "redis-drill": "flows/drill.py:drill",
}


class ScheduleSpec(BaseModel):
    """A cron schedule of a deployment, with the parameters its runs get over the deployment's."""

    cron: str
    timezone: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class DeploymentSpec(BaseModel):
    """One deployment to register."""

    flow_name: str
    name: str
    entrypoint: str
    description: str
    work_pool: str
    parameters: dict[str, Any]
    schedules: list[ScheduleSpec]
    tags: list[str]
    instance: str
    environment: str

    @property
    def full_name(self) -> str:
        """`flow/deployment`, as `prefect deployment run` takes it."""
        return f"{self.flow_name}/{self.name}"


def environment_tags(environment: EnvironmentConfig) -> list[str]:
    """Tags of every deployment of the environment; `protected` pins the restore approval."""
    tags = [PROJECT_TAG, f"env:{environment.environment}", *environment.prefect.tags]
    return [*tags, PROTECTED_TAG] if environment.protected else tags


def deployment_specs(environment: EnvironmentConfig) -> list[DeploymentSpec]:
    """Every deployment the environment file stands for, in a stable order."""
    specs: list[DeploymentSpec] = []
    for name in sorted(environment.instances):
        specs += _instance_specs(environment, name, environment.instance(name))
    return specs


def _instance_specs(
    environment: EnvironmentConfig, name: str, config: InstanceConfig
) -> list[DeploymentSpec]:
    schedules, env = environment.schedules, environment.environment
    found: list[tuple[str, str, str, BaseModel, str | None, dict[str, Any]]] = [
        ("redis-backup", name, f"Back up {name} ({env}) and copy it to every other location.",
         environment.backup_request(name), schedules.backup, {}),
        ("redis-restore", name, f"Restore a backup of {name} ({env}): the plan is shown first"
         + (", and a person must approve it." if environment.protected else "."),
         environment.restore_request(name), None, {}),
        ("redis-validate", name, f"Validate the newest backup of {name} ({env}) and a random sample.",
         environment.validate_request(name), schedules.validate_, {}),
        ("redis-restore-test", name, f"Restore a backup of {name} ({env}) into a throwaway Redis and check "
         "it against its manifest (and the data check); the instance is not touched.",
         environment.restore_test_request(name), schedules.restore_test, {}),
    ]  # fmt: skip
    if environment.drills is not None and config.has_files:
        found.append(
            ("redis-drill", name, f"RTO drill of {name} ({env}): KILLS its server, restores the latest "
             "backup, verifies it and times the recovery against the target.",
             environment.drill_request(name), schedules.drill, {})
        )  # fmt: skip
    if config.has_files and (schedules.aof_backup or config.kind is BackupKind.AOF):
        found.append(
            ("redis-backup", f"{name}-aof", f"Back up the AOF files of {name} ({env}).",
             environment.backup_request(name, kind=BackupKind.AOF, mode=None), schedules.aof_backup, {})
        )  # fmt: skip
    if environment.prunes(config):
        found.append(
            ("redis-prune", name, f"Apply each location's retention to {name} ({env}); a manual run is a "
             "dry run unless apply is ticked, a scheduled run applies.",
             environment.prune_request(name), schedules.prune, {"apply": True})
        )  # fmt: skip
    if config.replicates:
        found.append(
            ("redis-replicate", name, f"Copy the backups of {name} ({env}) missing from the other "
             "locations, verified, and report each location's lag.",
             environment.replicate_request(name), schedules.replicate, {})
        )  # fmt: skip
    tags = [*environment_tags(environment), instance_tag(env, name)]
    return [
        DeploymentSpec(
            flow_name=flow_name,
            name=f"{env}-{suffix}",
            entrypoint=ENTRYPOINTS[flow_name],
            description=description,
            work_pool=environment.prefect.work_pool,
            parameters={"request": _form(request), **_metrics(environment, cron)},
            schedules=(
                []
                if cron is None
                else [
                    ScheduleSpec(
                        cron=cron,
                        timezone=environment.prefect.timezone,
                        # A schedule's parameters replace the deployment's by name: the whole request.
                        parameters={"request": {**_form(request), **overrides}} if overrides else {},
                    )
                ]
            ),
            tags=tags,
            instance=name,
            environment=env,
        )
        for flow_name, suffix, description, request, cron, overrides in found
    ]


def _metrics(environment: EnvironmentConfig, cron: str | None) -> dict[str, Any]:
    """The deployment's `metrics` parameter: the environment's sinks, and for a scheduled flow how
    old its last success may get (the interval plus the margin the overdue automation uses too)."""
    targets = environment.metrics
    if targets.empty:
        return {}
    max_age = overdue_after(cron, environment.prefect.timezone) if cron is not None else None
    with_age = targets.model_copy(update={"max_age": max_age})
    return {"metrics": with_age.model_dump(mode="json", exclude_none=True)}


def _form(request: BaseModel) -> dict[str, Any]:
    """A request as a deployment's parameters: JSON, defaults left out (the form shows them)."""
    return request.model_dump(mode="json", exclude_defaults=True)


def left_out(environment: EnvironmentConfig) -> list[str]:
    """What the file schedules that an instance gets no deployment for, and why (said by deploy)."""
    notes: list[str] = []
    schedules = environment.schedules
    for name in sorted(environment.instances):
        config = environment.instance(name)
        if schedules.prune and not environment.prunes(config):
            notes.append(f"{name} is not pruned: none of its locations has a retention policy")
        if schedules.replicate and not config.replicates:
            notes.append(f"{name} is not replicated: it has one location")
        if schedules.aof_backup and not config.has_files:
            notes.append(f"{name} has no AOF backup: its target gives no access to its files")
        if environment.drills is not None and not config.has_files:
            notes.append(f"{name} has no drill: its target cannot be killed and restored by file")
    return notes
