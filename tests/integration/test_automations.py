"""An environment's automations on a real Prefect server (`prefect server start`, its triggers and
actions services as shipped): registered with the deployments, a failed run of a deployment
notifies through a Custom Webhook block pointed at a local HTTP receiver, an overdue backup
deployment's proactive trigger fires and notifies, and registering a changed file follows it.

The failing run is the backup deployment's own flow run (its Redis on a closed port), run in this
process by Prefect's flow engine as a worker's subprocess would run it, without the subprocess.

No `from __future__ import annotations`: the flows are loaded by Prefect from the source tree.
"""

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.automations import AutomationCore, DoNothing, EventTrigger, Posture, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret
from prefect.client.orchestration import SyncPrefectClient
from prefect.events.filters import (
    AutomationFilter,
    AutomationFilterTags,
    EventFilter,
    EventNameFilter,
    EventResourceFilter,
)
from prefect.flow_engine import run_flow
from prefect.states import Crashed

from flows.automations import RegisteredAutomations, own_automations, register_automations
from flows.backup import backup
from flows.deploy import Registered, register
from redis_dr.automation_plan import AutomationKind, automation_specs
from redis_dr.environment import EnvironmentConfig, load_environment
from redis_dr.sandbox.ports import free_port
from tests.integration.cli import assert_one_clear_error, run_cli

pytestmark = pytest.mark.integration

ENV = "autotest"
BLOCK = "autotest-oncall"
FAILED = "redis-dr autotest: a run failed or crashed"
OVERDUE = "redis-dr autotest: backup overdue, redis-backup/autotest-sessions"
#: The shortest window Prefect allows a proactive trigger (the shipped one derives it from the cron).
SHORT = timedelta(seconds=10)
WAIT_SECONDS = 60.0


class Receiver:
    """A webhook receiver on 127.0.0.1: every JSON body posted to it, in arrival order."""

    def __init__(self) -> None:
        received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.seen: list[dict[str, Any]] = []

    def wait_for(self, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first notification (since the last one taken) that `matches`, once it arrived."""
        deadline = time.monotonic() + WAIT_SECONDS
        for seen in self.seen:
            if matches(seen):
                self.seen.remove(seen)
                return seen
        while True:
            try:
                message = self.received.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no such notification after {WAIT_SECONDS:.0f}s; received: {self.seen}")
            if matches(message):
                return message
            self.seen.append(message)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def environment_file(directory: Path, **changes: Any) -> Path:
    """The autotest environment: one instance whose Redis port is closed, a backup every 5 minutes."""
    data = {
        "environment": ENV,
        "prefect": {"work_pool": "redis-dr-autotest", "timezone": "Europe/Berlin"},
        "schedules": {"backup": "*/5 * * * *"},
        "notifications": {"block": f"custom-webhook/{BLOCK}"},
        "instances": {"sessions": {"redis_url": f"redis://127.0.0.1:{free_port()}/0",
                                   "storage": [f"file://{directory / 'backups'}"]}},
        **changes,
    }  # fmt: skip
    path = directory / f"{ENV}-{len(list(directory.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Registration:
    """The environment as deploy registered it, then with the overdue window made SHORT."""

    def __init__(self, environment: EnvironmentConfig, deployed: Registered, as_deployed: list[Any]) -> None:
        self.environment = environment
        self.deployed = deployed
        self.as_deployed = as_deployed
        self.shortened: RegisteredAutomations | None = None


@pytest.fixture(scope="module")
def registration(
    prefect_client: SyncPrefectClient, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registration]:
    """Deploy the environment (the block saved first), then shorten its overdue window at once, so that
    its clock runs while the other tests do; the environment's automations are deleted afterwards."""
    CustomWebhookNotificationBlock(
        name="redis-dr autotest", url=receiver.url, json_data={"subject": "{{subject}}", "body": "{{body}}"}
    ).save(BLOCK, overwrite=True)
    environment = load_environment(environment_file(tmp_path_factory.mktemp(ENV)))
    outcome = Registration(environment, register(environment), own_automations(prefect_client, ENV))
    short = [
        spec.model_copy(update={"within": SHORT}) if spec.kind is AutomationKind.BACKUP_OVERDUE else spec
        for spec in automation_specs(environment)
    ]
    outcome.shortened = register_automations(ENV, short)
    try:
        yield outcome
    finally:
        tagged = AutomationFilter(tags=AutomationFilterTags(all_=[f"env:{ENV}"]))
        for automation in prefect_client.read_automations(automations=tagged):
            prefect_client.delete_automation(automation.id)


def by_name(automations: list[Any]) -> dict[str, AutomationCore]:
    return {automation.name: automation for automation in automations}


def test_deploy_registers_the_environments_automations_with_their_triggers(
    prefect_client: SyncPrefectClient, registration: Registration
) -> None:
    assert registration.deployed.automations == {FAILED: "created", OVERDUE: "created"}
    assert registration.deployed.automations_removed == []
    automations = by_name(registration.as_deployed)
    assert sorted(automations) == [FAILED, OVERDUE]
    block_id = prefect_client.read_block_document_by_name(BLOCK, "custom-webhook").id
    deployment_id = prefect_client.read_deployment_by_name("redis-backup/autotest-sessions").id

    failed = automations[FAILED]
    assert isinstance(failed.trigger, EventTrigger)
    assert failed.trigger.posture == Posture.Reactive and failed.trigger.within == timedelta(0)
    assert failed.trigger.expect == {"prefect.flow-run.*"}
    assert failed.trigger.match.model_dump() == {
        "prefect.resource.id": "prefect.flow-run.*", "prefect.state-type": ["FAILED", "CRASHED"]}  # fmt: skip
    related = failed.trigger.match_related
    assert isinstance(related, list)
    assert sorted(spec.model_dump()["prefect.resource.id"] for spec in related) == [  # type: ignore[union-attr]
        "prefect.tag.env:autotest", "prefect.tag.redis-dr"]  # fmt: skip
    assert sorted(failed.tags) == ["env:autotest", "redis-dr"]

    overdue = automations[OVERDUE]
    assert isinstance(overdue.trigger, EventTrigger)
    assert overdue.trigger.posture == Posture.Proactive
    assert overdue.trigger.expect == {"prefect.flow-run.Completed"} and overdue.trigger.threshold == 1
    assert overdue.trigger.within == timedelta(
        minutes=15
    )  # every 5 minutes, plus the 10-minute minimum margin
    assert overdue.trigger.match_related.model_dump() == {  # type: ignore[union-attr]
        "prefect.resource.role": "deployment", "prefect.resource.id": f"prefect.deployment.{deployment_id}"}  # fmt: skip
    for automation in (failed, overdue):
        [action] = automation.actions
        assert isinstance(action, SendNotification) and action.block_document_id == block_id

    # Registering again changes only what differs: the overdue window, not the failure automation.
    shortened = registration.shortened
    assert shortened is not None
    assert (shortened.updated, shortened.unchanged, shortened.created, shortened.removed) == (
        [OVERDUE], [FAILED], [], [])  # fmt: skip


def test_a_failed_run_of_a_deployment_notifies_through_the_block(
    prefect_client: SyncPrefectClient, registration: Registration, receiver: Receiver
) -> None:
    deployment = prefect_client.read_deployment_by_name("redis-backup/autotest-sessions")
    flow_run = prefect_client.create_flow_run_from_deployment(deployment.id)
    state = run_flow(backup, flow_run=flow_run, return_type="state")  # the worker's engine, in this process
    assert state.is_failed(), state  # type: ignore[union-attr]

    message = receiver.wait_for(lambda m: flow_run.name in m["body"])
    assert message["subject"] == "redis-dr autotest: redis-backup Failed"
    assert (
        f"Run {flow_run.name} of redis-backup (deployment autotest-sessions) ended Failed" in message["body"]
    )
    assert "127.0.0.1" in message["body"]  # the state message names the Redis it could not reach


def test_a_crashed_run_notifies_too(
    prefect_client: SyncPrefectClient, registration: Registration, receiver: Receiver
) -> None:
    deployment = prefect_client.read_deployment_by_name("redis-backup/autotest-sessions")
    flow_run = prefect_client.create_flow_run_from_deployment(deployment.id)
    # What a worker reports when the process of a run died under it.
    prefect_client.set_flow_run_state(
        flow_run.id, Crashed(message="the run's process exited with -9"), force=True
    )

    message = receiver.wait_for(lambda m: flow_run.name in m["body"])
    assert message["subject"] == "redis-dr autotest: redis-backup Crashed"
    assert "the run's process exited with -9" in message["body"]


def test_a_backup_deployment_without_a_completed_run_in_its_window_raises_an_event_and_notifies(
    prefect_client: SyncPrefectClient, registration: Registration, receiver: Receiver
) -> None:
    message = receiver.wait_for(lambda m: "no backup by" in m["subject"])
    assert message["subject"] == "redis-dr autotest: no backup by redis-backup/autotest-sessions for 10s"
    assert message["body"].startswith("redis-backup/autotest-sessions has no run completed within 10s")

    [overdue] = [a for a in own_automations(prefect_client, ENV) if a.name == OVERDUE]
    triggered = EventFilter(
        event=EventNameFilter(name=["prefect.automation.triggered"]),
        resource=EventResourceFilter(id=[f"prefect.automation.{overdue.id}"]),
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while not prefect_client.read_events(filter=triggered, limit=50).events:  # persisted in batches
        assert time.monotonic() < deadline, "the automation's triggered event was never stored"
        time.sleep(0.5)


def test_registering_a_changed_file_updates_and_removes_only_its_own_automations(
    prefect_client: SyncPrefectClient,
    registration: Registration,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Automations somebody else made (disabled, and expecting an event that never happens): one with the
    # environment's prefix but not its tags, one with its tags but not its prefix. Deploy leaves both alone.
    never = EventTrigger(expect={"autotest.never"})
    foreign = [
        AutomationCore(name="redis-dr autotest: mine", enabled=False, trigger=never, actions=[DoNothing()]),
        AutomationCore(
            name="autotest pager",
            enabled=False,
            tags=["redis-dr", f"env:{ENV}"],
            trigger=never,
            actions=[DoNothing()],
        ),
    ]
    foreign_ids = [prefect_client.create_automation(automation) for automation in foreign]
    instance = registration.environment.instances["sessions"].model_dump(mode="json", exclude_none=True)
    changed = environment_file(
        tmp_path, notifications={}, schedules={"backup": "0 */2 * * *"},
        instances={"sessions": instance, "cache": instance},
    )  # fmt: skip

    code, out, err = run_cli(capsys, "deploy", "--env-file", str(changed), "--json")

    assert code == 0, err
    outcome = json.loads(out)
    overdue_cache = "redis-dr autotest: backup overdue, redis-backup/autotest-cache"
    assert outcome["automations"] == {overdue_cache: "created", OVERDUE: "updated"}
    assert outcome["automations_removed"] == [FAILED]
    assert [spec["name"] for spec in outcome["automation_specs"]] == [overdue_cache, OVERDUE]
    automations = by_name(own_automations(prefect_client, ENV))
    assert sorted(automations) == [overdue_cache, OVERDUE]
    overdue = automations[OVERDUE]
    assert isinstance(overdue.trigger, EventTrigger)
    # Every 2 hours, but 3 the night Berlin's clocks go back; plus a quarter of that.
    assert overdue.trigger.within == timedelta(hours=3, minutes=45)
    assert [action.type for action in overdue.actions] == ["do-nothing"]  # no block: an event only
    for automation_id in foreign_ids:
        assert prefect_client.read_automation(automation_id) is not None

    # The same file again: nothing to change, and the terminal names each automation.
    code, out, err = run_cli(capsys, "deploy", "--env-file", str(changed))
    assert code == 0, err
    assert f"automation {OVERDUE}: unchanged" in err.splitlines()
    assert any(line.startswith(f"{OVERDUE}  no run completed within 3h45m") for line in out.splitlines()), out
    assert by_name(own_automations(prefect_client, ENV))[OVERDUE].id == overdue.id  # not replaced


def test_deploy_refuses_a_block_that_is_missing_or_cannot_notify_before_registering_anything(
    prefect_client: SyncPrefectClient,
    registration: Registration,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    Secret(value="not a notifier").save("autotest-secret", overwrite=True)
    backup = "redis-backup/autotest-sessions"
    schedules = [s.schedule.cron for s in prefect_client.read_deployment_by_name(backup).schedules]  # type: ignore[union-attr]
    before = sorted(a.model_dump_json() for a in own_automations(prefect_client, ENV))
    for block, fragment in (
        (
            "custom-webhook/autotest-nobody",
            "notification block custom-webhook/autotest-nobody does not exist",
        ),
        ("secret/autotest-secret", "block secret/autotest-secret cannot send notifications"),
    ):
        broken = environment_file(tmp_path, notifications={"block": block}, schedules={"backup": "0 3 * * *"})
        code, _, err = run_cli(capsys, "deploy", "--env-file", str(broken))
        assert code == 2
        assert_one_clear_error(err, fragment)
    assert "0 3 * * *" not in schedules  # the broken files' schedule was never applied
    assert [s.schedule.cron for s in prefect_client.read_deployment_by_name(backup).schedules] == schedules  # type: ignore[union-attr]
    assert sorted(a.model_dump_json() for a in own_automations(prefect_client, ENV)) == before


def test_deploy_dry_run_lists_the_automations_it_would_register(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = environment_file(tmp_path)

    code, out, err = run_cli(capsys, "deploy", "--env-file", str(env_file), "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.split()[:1] == ["AUTOMATION"] and "NOTIFIES" in line for line in lines), out
    assert any(line.startswith(FAILED) and line.endswith(f"custom-webhook/{BLOCK}") for line in lines), out
    assert any(line.startswith(f"{OVERDUE}  no run completed within 15m (*/5 * * * * in Europe/Berlin: 5m apart")
               for line in lines), out  # fmt: skip

    code, out, err = run_cli(capsys, "deploy", "--env-file", str(env_file), "--dry-run", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert [spec["name"] for spec in shown["automation_specs"]] == [FAILED, OVERDUE]
    assert shown["automation_specs"][1]["within"] == "15m"
    assert ("redis-backup", "autotest-sessions") in {
        (spec["flow_name"], spec["name"]) for spec in shown["specs"]
    }
