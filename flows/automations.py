"""Register an environment's automations (redis_dr/automation_plan.py) with the Prefect server.

Each spec becomes a standalone automation (`prefect.automations.AutomationCore`):

- run-failed: a reactive trigger on `prefect.flow-run.*` events whose run is in a FAILED or
  CRASHED state (a TimedOut run is FAILED too) and that carry the tags redis-dr and
  env:<environment> (every deployment of the environment has both, and its runs inherit them);
  it fires at once for every such run.
- backup-overdue: a proactive trigger expecting one `prefect.flow-run.Completed` of a flow run
  related to the backup deployment within `within`. The server evaluates it every 5 s
  (PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY): a window opens when the automation is loaded,
  fires when it closes without the event, and the next one opens at once. Prefect refuses a
  proactive `within` under 10 s.

Both notify through the environment's notification block (SendNotification, rendered by the
server) or, without one, do nothing beyond the server's own prefect.automation.triggered event.
The server's automations of the environment are found by their tags and name prefix together:
a spec's namesake is updated when it differs (an update restarts a proactive window, so an
unchanged one is left alone), created when missing, and the environment's others are deleted.

No `from __future__ import annotations` in flows/ (see flows/backup.py).
"""

from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.automations import (
    AutomationCore,
    DoNothing,
    EventTrigger,
    Posture,
    ResourceSpecification,
    SendNotification,
)
from prefect.events.actions import ActionTypes
from prefect.events.filters import AutomationFilter, AutomationFilterTags
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel

from redis_dr.automation_plan import AutomationKind, AutomationSpec, name_prefix
from redis_dr.errors import ConfigError, NotFoundError
from redis_dr.run_tags import PROJECT_TAG

#: Rows per read from the server (its default and largest page).
PAGE = 200
FAILED_STATE_TYPES = ["FAILED", "CRASHED"]


class RegisteredAutomations(BaseModel):
    """What `register_automations` did, by automation name."""

    created: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]

    @property
    def registered(self) -> list[str]:
        """Every automation the environment now has, by name."""
        return sorted(self.outcomes)

    @property
    def outcomes(self) -> dict[str, str]:
        """Each automation the environment now has: created, updated or unchanged."""
        done = {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}
        return {name: outcome for outcome, names in done.items() for name in sorted(names)}


def register_automations(environment: str, specs: list[AutomationSpec]) -> RegisteredAutomations:
    """Make the environment's automations on the server those of `specs`.

    Blocks and deployments are looked up before anything changes (`notification_blocks`).
    """
    outcome = RegisteredAutomations(created=[], updated=[], unchanged=[], removed=[])
    blocks = notification_blocks(specs)
    with get_client(sync_client=True) as client:
        deployments = {
            name: _deployment_id(client, name)
            for name in sorted({s.deployment for s in specs if s.deployment})
        }
        wanted = {spec.name: _automation(spec, blocks, deployments) for spec in specs}
        for existing in own_automations(client, environment):
            automation = wanted.get(existing.name)
            if automation is None or existing.name in outcome.registered:  # stale, or a duplicate
                client.delete_automation(existing.id)
                outcome.removed.append(existing.name)
            elif _same(existing, automation):
                outcome.unchanged.append(existing.name)
            else:
                client.update_automation(existing.id, automation)
                outcome.updated.append(existing.name)
        for name, automation in wanted.items():
            if name not in outcome.registered:
                client.create_automation(automation)
                outcome.created.append(name)
    # A duplicate of a registered name (left by an interrupted deploy) is deleted without a word.
    outcome.removed = sorted(set(outcome.removed) - set(outcome.registered))
    return outcome


def own_automations(client: Any, environment: str) -> list[Any]:
    """The environment's automations that deploy registered: tagged redis-dr and env:<environment>,
    and named `redis-dr <environment>: ...` (never one somebody else made), oldest name first."""
    tags = AutomationFilterTags(all_=[PROJECT_TAG, f"env:{environment}"])
    found: list[Any] = []
    while True:
        page = client.read_automations(automations=AutomationFilter(tags=tags), limit=PAGE, offset=len(found))
        found += page
        if len(page) < PAGE:
            return [a for a in found if a.name.startswith(name_prefix(environment))]


def _automation(
    spec: AutomationSpec, blocks: dict[str, UUID], deployments: dict[str, UUID]
) -> AutomationCore:
    if spec.kind is AutomationKind.RUN_FAILED:
        trigger = EventTrigger(
            posture=Posture.Reactive,
            expect={"prefect.flow-run.*"},
            match=ResourceSpecification(
                {"prefect.resource.id": "prefect.flow-run.*", "prefect.state-type": FAILED_STATE_TYPES}
            ),
            match_related=[
                ResourceSpecification(
                    {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{tag}"}
                )
                for tag in spec.tags
            ],
            threshold=1,
            within=timedelta(0),  # fire at once, for every run
        )
    else:
        assert spec.deployment is not None and spec.within is not None
        trigger = EventTrigger(
            posture=Posture.Proactive,
            expect={"prefect.flow-run.Completed"},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {
                    "prefect.resource.role": "deployment",
                    "prefect.resource.id": f"prefect.deployment.{deployments[spec.deployment]}",
                }
            ),
            threshold=1,
            within=spec.within,
        )
    actions: list[ActionTypes] = (
        [SendNotification(block_document_id=blocks[spec.notify], subject=spec.subject, body=spec.body)]
        if spec.notify
        else [DoNothing()]
    )
    return AutomationCore(
        name=spec.name,
        description=spec.description,
        enabled=True,
        tags=spec.tags,
        trigger=trigger,
        actions=actions,
    )


def _same(existing: Any, wanted: AutomationCore) -> bool:
    """The server's automation already is the wanted one (its trigger's server-side id aside)."""
    as_registered = AutomationCore.model_validate(existing.model_dump(exclude={"id", "owner_resource"}))
    return bool(as_registered == wanted)


def notification_blocks(specs: list[AutomationSpec]) -> dict[str, UUID]:
    """The id of each block the specs notify through; ConfigError naming one that is missing or
    cannot notify (deploy asks before it registers anything)."""
    with get_client(sync_client=True) as client:
        return {
            ref: _notification_block(client, ref) for ref in sorted({s.notify for s in specs if s.notify})
        }


def _notification_block(client: Any, ref: str) -> UUID:
    """The id of the block `<block-type-slug>/<name>`; ConfigError if it is missing or cannot notify."""
    slug, name = ref.split("/", 1)
    try:
        document = client.read_block_document_by_name(name, slug, include_secrets=False)
    except ObjectNotFound:
        raise ConfigError(
            f"notification block {ref} does not exist on the Prefect server: create it (Blocks in the "
            "UI, e.g. a Custom Webhook named redis-dr-oncall) or change notifications.block in the "
            "environment file"
        ) from None
    capabilities = document.block_schema.capabilities if document.block_schema else []
    if "notify" not in capabilities:
        raise ConfigError(
            f"block {ref} cannot send notifications: name a notification block (custom-webhook, "
            "slack-webhook, ...) in notifications.block"
        )
    return UUID(str(document.id))


def _deployment_id(client: Any, full_name: str) -> UUID:
    try:
        return UUID(str(client.read_deployment_by_name(full_name).id))
    except ObjectNotFound:
        raise NotFoundError(
            f"deployment {full_name} is not on the Prefect server: register it first"
        ) from None
