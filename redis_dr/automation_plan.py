"""Which Prefect automations an environment file stands for: pure data, no Prefect import.

Two kinds, registered by `redis-dr deploy` beside the deployments (flows/automations.py):

- run-failed (one per environment, when the file names a notification block): a run of any
  of the environment's redis-dr flows that ends Failed (TimedOut too) or Crashed notifies
  through the block. Without a block there is no one to tell: the run's own events are all.
- backup-overdue (one per scheduled backup deployment): a proactive trigger expecting a
  Completed run of that deployment within its schedule's longest interval plus a margin.
  Its firing is an event of its own (prefect.automation.triggered) and, with a block, a
  notification; it fires again every `within` while no backup completes.

The interval and the margin are those of redis_dr/schedule_gaps.py, which the metrics'
max age (RedisBackupOld) uses too: the automation and the alert call a backup overdue alike.

Every automation is named `redis-dr <environment>: ...` and tagged redis-dr and
env:<environment>: deploy finds its own ones by both, updates them, removes those the file no
longer stands for, and never touches an automation it did not create.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from redis_dr.deployment_plan import DeploymentSpec, deployment_specs
from redis_dr.durations import Duration, format_duration
from redis_dr.environment import EnvironmentConfig
from redis_dr.run_tags import PROJECT_TAG
from redis_dr.schedule_gaps import longest_gap, margin

#: The flow whose deployments must complete within their schedule's interval.
BACKUP_FLOW = "redis-backup"


class AutomationKind(StrEnum):
    """What an automation watches."""

    RUN_FAILED = "run-failed"
    BACKUP_OVERDUE = "backup-overdue"


class AutomationSpec(BaseModel):
    """One automation to register."""

    name: str
    kind: AutomationKind
    environment: str
    tags: list[str]
    #: The notification block (`<block-type-slug>/<block-name>`), or None: the firing is an event only.
    notify: str | None
    #: backup-overdue: the deployment (flow/deployment), its schedule and the window of the trigger.
    deployment: str | None = None
    cron: str | None = None
    timezone: str | None = None
    interval: Duration | None = None
    within: Duration | None = None

    @property
    def trigger(self) -> str:
        """What fires it, in words (of a backup-overdue one: what its deployment has not done)."""
        if self.kind is AutomationKind.RUN_FAILED:
            return f"a run of a redis-dr flow of {self.environment} ends Failed or Crashed"
        assert self.within is not None and self.interval is not None
        return (
            f"no run completed within {format_duration(self.within)} "
            f"({self.cron} in {self.timezone}: {format_duration(self.interval)} apart at most)"
        )

    @property
    def description(self) -> str:
        """The automation's description on the server."""
        what = (
            self.trigger
            if self.kind is AutomationKind.RUN_FAILED
            else f"{self.deployment} has {self.trigger}"
        )
        return (
            f"Fires when {what}. Registered by `redis-dr deploy` from the {self.environment} environment "
            "file: a change made here is replaced by the next deploy."
        )

    @property
    def subject(self) -> str:
        """The notification's subject (a template the server renders)."""
        if self.kind is AutomationKind.RUN_FAILED:
            return f"redis-dr {self.environment}: {{{{ flow.name }}}} {{{{ flow_run.state.name }}}}"
        assert self.within is not None
        return (
            f"redis-dr {self.environment}: no backup by {self.deployment} for {format_duration(self.within)}"
        )

    @property
    def body(self) -> str:
        """The notification's text (a template the server renders with the run that failed)."""
        if self.kind is AutomationKind.RUN_FAILED:
            return (
                "Run {{ flow_run.name }} of {{ flow.name }} (deployment {{ deployment.name }}) ended "
                "{{ flow_run.state.name }} at {{ flow_run.state.timestamp }}:\n"
                "{{ flow_run.state.message }}\n"
                "Its logs and artifact: {{ flow_run|ui_url }}"
            )
        return (
            f"{self.deployment} has {self.trigger}. The newest backup is older "
            "than the schedule allows. Look at its last runs (Failed? Late? still waiting for the "
            "instance's lease?) and at the worker of its work pool."
        )


def automation_specs(environment: EnvironmentConfig) -> list[AutomationSpec]:
    """Every automation the environment file stands for, in a stable order."""
    env = environment.environment
    block = environment.notifications.block
    tags = [PROJECT_TAG, f"env:{env}"]
    specs: list[AutomationSpec] = []
    if block is not None:
        specs.append(
            AutomationSpec(
                name=f"{name_prefix(env)}a run failed or crashed",
                kind=AutomationKind.RUN_FAILED,
                environment=env,
                tags=tags,
                notify=block,
            )
        )
    for deployment in _scheduled_backups(environment):
        for schedule in deployment.schedules:
            interval = longest_gap(schedule.cron, schedule.timezone)
            if interval is None:
                continue  # it fires at most once: there is no interval to miss (said by `automation_notes`)
            specs.append(
                AutomationSpec(
                    name=f"{name_prefix(env)}backup overdue, {deployment.full_name}",
                    kind=AutomationKind.BACKUP_OVERDUE,
                    environment=env,
                    tags=tags,
                    notify=block,
                    deployment=deployment.full_name,
                    cron=schedule.cron,
                    timezone=schedule.timezone,
                    interval=interval,
                    within=interval + margin(interval),
                )
            )
    return specs


def automation_notes(environment: EnvironmentConfig) -> list[str]:
    """What the file schedules that gets no overdue automation, and why (said by deploy)."""
    return [
        f"{deployment.full_name} has no overdue alert: its schedule {schedule.cron} does not fire twice"
        for deployment in _scheduled_backups(environment)
        for schedule in deployment.schedules
        if longest_gap(schedule.cron, schedule.timezone) is None
    ]


def name_prefix(environment: str) -> str:
    """How the names of an environment's automations start (deploy finds its own ones by it)."""
    return f"{PROJECT_TAG} {environment}: "


def _scheduled_backups(environment: EnvironmentConfig) -> list[DeploymentSpec]:
    return [
        spec for spec in deployment_specs(environment) if spec.flow_name == BACKUP_FLOW and spec.schedules
    ]


