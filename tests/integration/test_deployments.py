"""Every flow runs from a deployment: runs submitted to a real Prefect server the way the UI does.

The UI's "Run" form posts the parameters as JSON to the server, which creates
a flow run of the deployment; a runner (`flow.serve`) or a process worker picks
it up and runs it in a process of its own. These tests do exactly that against
`prefect server start`, a served process and a `prefect worker start` process.
"""

import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import cloudpickle
import pytest
from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.serve import FLOWS
from redis_dr.catalog import Catalog
from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage
from tests.fixtures.prefect_server import ROOT, PrefectServer
from tests.integration.prefect_runs import (
    RUN_SECONDS,
    logs_once_delivered,
    submit_like_the_ui,
    wait_for_deployment,
    wait_until_final,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(prefect_client: SyncPrefectClient) -> SyncPrefectClient:
    """A client of the test server."""
    return prefect_client


SERVED = "redis-backup/served"
WORKER = "redis-backup/worker"
POOL = "redis-dr-process"
#: A run of one instance is named after it and its UTC start: `backup-sessions-20261125T090000Z`.
RUN_NAME = re.compile(r"^backup-sessions-\d{8}T\d{6}Z$")


def backup_parameters(redis_url: str, storage: str) -> dict[str, Any]:
    """The backup flow's parameters as the UI's form sends them: JSON, no Python objects."""
    return {"request": {"instance": "sessions", "redis_url": redis_url, "storage": [storage]}}


#: Parameters, in JSON form, that each flow accepts (every flow in flows.serve.FLOWS needs one).
SAMPLE_PARAMETERS: dict[str, dict[str, Any]] = {
    "redis-backup": backup_parameters("redis://127.0.0.1:6379/0", "file:///var/backups/redis"),
    "redis-restore": {
        "request": {
            "instance": "sessions",
            "storage": ["file:///var/backups/redis"],
            "target": "docker://redis",
        }
    },
    "redis-prune": {
        "request": {"instance": "sessions", "locations": [
            {"url": "file:///var/backups/redis", "policy": {"keep_daily": 7, "keep_within": "30d"}}]}
    },
    "redis-replicate": {
        "request": {"instance": "sessions", "source": "file:///var/backups/redis",
                    "destinations": [{"url": "s3://dr-bucket/redis?region=eu-west-1"}], "max_lag": "2h"}
    },
    "redis-validate": {"request": {"instance": "sessions", "storage": ["file:///var/backups/redis"], "sample": 2}},
    "redis-restore-test": {
        "request": {"instance": "sessions", "storage": ["file:///var/backups/redis"], "backup": "7d-ago",
                    "check": ["/opt/app/bin/check-sessions", "{url}"], "image": "redis:7.2"}
    },
    "redis-drill": {
        "request": {"instance": "sessions", "storage": ["file:///var/backups/redis"],
                    "target": "compose://sessions/redis", "rto_target": "5m", "strategy": "file"}
    },
}


@pytest.mark.parametrize("flow", FLOWS, ids=lambda flow: flow.name)
def test_every_flow_validates_its_parameters_after_travelling_by_value(flow: Flow[..., Any]) -> None:
    """A runner ships the flow by value (cloudpickle); the copy must still validate a form's JSON."""
    travelled = cloudpickle.loads(cloudpickle.dumps(flow))
    parameters = travelled.validate_parameters(SAMPLE_PARAMETERS[flow.name])
    assert set(SAMPLE_PARAMETERS[flow.name]) <= set(parameters)


@pytest.fixture(scope="module")
def served(prefect_server: PrefectServer, client: SyncPrefectClient) -> Iterator[UUID]:
    """The backup flow served (`flow.serve` via flows.serve) by a process of its own."""
    argv = [sys.executable, "-c", "from flows.serve import main; main(['--name', 'served'])"]
    process = prefect_server.spawn(argv)
    try:
        yield wait_for_deployment(client, prefect_server, SERVED, process)
    finally:
        prefect_server.stop_child(process)


@pytest.fixture(scope="module")
def worker_deployment(prefect_server: PrefectServer, client: SyncPrefectClient) -> Iterator[UUID]:
    """The backup flow deployed to a process work pool, and a `prefect worker start` polling it."""
    from prefect.workers.process import ProcessWorker

    from flows.backup import backup

    client.create_work_pool(
        WorkPoolCreate(
            name=POOL, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
        )
    )
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        source = backup.from_source(source=str(ROOT), entrypoint="flows/backup.py:backup")
        source.deploy(name="worker", work_pool_name=POOL, print_next_steps=False)  # type: ignore[union-attr]
    process = prefect_server.spawn(
        [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", POOL,
         "--type", "process", "--prefetch-seconds", "1", "--install-policy", "never"]
    )  # fmt: skip
    try:
        yield wait_for_deployment(client, prefect_server, WORKER, process)
    finally:
        prefect_server.stop_child(process)


def listed_ids(storage_url: str) -> list[str]:
    """The committed backups of `sessions` in a location."""
    storage = open_storage(storage_url)
    try:
        return [manifest.id for manifest in Catalog(storage, "sessions").list().manifests]
    finally:
        storage.close()


@pytest.fixture
def quick_redis(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    """A redis-server with some keys that streams its snapshot without the diskless delay."""
    server = redis_factory({"repl-diskless-sync-delay": "0"})
    server.client().mset({f"session:{n}": "x" * 100 for n in range(500)})
    return server


@pytest.mark.parametrize("target", ["served", "worker_deployment"])
def test_a_backup_submitted_like_the_ui_completes_and_is_listed(
    target: str,
    request: pytest.FixtureRequest,
    client: SyncPrefectClient,
    prefect_server: PrefectServer,
    quick_redis: RedisServer,
    tmp_path: Path,
) -> None:
    deployment_id: UUID = request.getfixturevalue(target)
    storage = f"file://{tmp_path / 'backups'}"
    flow_run_id = submit_like_the_ui(client, deployment_id, backup_parameters(quick_redis.url, storage))

    run = wait_until_final(client, flow_run_id, lambda: prefect_server.children_output())

    assert run.state is not None and run.state.is_completed(), run.state
    [backup_id] = listed_ids(storage)
    assert RUN_NAME.match(run.name), run.name
    lines = "\n".join(logs_once_delivered(client, flow_run_id))
    assert f"backup id {backup_id} reserved" in lines
    assert "500 keys" in lines
    assert f"committed backup {backup_id}" in lines


def test_a_failed_run_says_why_in_one_line_without_tracebacks(
    client: SyncPrefectClient, served: UUID, tmp_path: Path, prefect_server: PrefectServer
) -> None:
    port = free_port()  # nothing listens here
    parameters = backup_parameters(f"redis://127.0.0.1:{port}/0", f"file://{tmp_path}")
    flow_run_id = submit_like_the_ui(client, served, parameters)

    run = wait_until_final(client, flow_run_id, lambda: prefect_server.children_output())

    assert run.state is not None and run.state.is_failed()
    assert run.state.message == f"cannot reach Redis at 127.0.0.1:{port}: connection refused"
    loud = logs_once_delivered(client, flow_run_id, min_level=20)
    assert not [line for line in loud if "Traceback" in line or "\n" in line.strip()], loud
    assert any(f"failed at check-redis: cannot reach Redis at 127.0.0.1:{port}" in line for line in loud)


def wait_until_paused(client: SyncPrefectClient, flow_run_id: UUID, output: Callable[[], str]) -> FlowRun:
    """The flow run once it pauses (waiting for a person), failing the test if it ends first."""
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        run = client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_paused():
            return run
        if (run.state is not None and run.state.is_final()) or time.monotonic() > deadline:
            pytest.fail(f"run {flow_run_id} is {run.state!r}, not paused:\n{output()[-4000:]}")
        time.sleep(0.2)


def restore_deployment(client: SyncPrefectClient) -> UUID:
    """The served restore deployment (registered by the runner right after the backup's)."""
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        try:
            return client.read_deployment_by_name("redis-restore/served").id
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_for_the_form(client: SyncPrefectClient, run: FlowRun) -> None:
    """Block until the paused run has saved its approval form (the UI shows it from then on)."""
    from prefect.input.run_input import keyset_from_paused_state

    assert run.state is not None
    key = keyset_from_paused_state(run.state)["schema"]  # type: ignore[arg-type]
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        try:
            client.read_flow_run_input(flow_run_id=run.id, key=key)
            return
        except Exception:
            if time.monotonic() > deadline:
                pytest.fail(f"run {run.id} paused but never saved its approval form")
            time.sleep(0.2)


@pytest.fixture
def protected_restore(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> tuple[RedisServer, dict[str, Any]]:
    """A live target, and the parameters of a protected replay of a runbook file into it."""
    source = redis_factory()
    source.client().mset({f"session:{n}": n for n in range(200)})
    source.client().save()
    runbook_file = tmp_path / "dump-20250101-000000.rdb"
    runbook_file.write_bytes((source.data_dir / "dump.rdb").read_bytes())
    target = redis_factory()
    request = {"instance": "sessions", "backup": str(runbook_file), "redis_url": target.url,
               "protected": True, "environment": "production", "checkpoint": False,
               "approval_timeout_seconds": 120}  # fmt: skip
    return target, {"request": request}


@pytest.mark.parametrize("approve", [True, False], ids=["approved", "not-approved"])
def test_a_protected_restore_pauses_until_a_person_approves_it_in_the_ui(
    approve: bool,
    client: SyncPrefectClient,
    served: UUID,
    prefect_server: PrefectServer,
    protected_restore: tuple[RedisServer, dict[str, Any]],
) -> None:
    from prefect.flow_runs import resume_flow_run

    target, parameters = protected_restore
    deployment = restore_deployment(client)
    flow_run_id = submit_like_the_ui(client, deployment, parameters)

    paused = wait_until_paused(client, flow_run_id, lambda: prefect_server.children_output())
    wait_for_the_form(client, paused)
    assert target.client().dbsize() == 0  # nothing done before the approval
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        resume_flow_run(flow_run_id, run_input={"approve": approve, "note": "on-call: checked the plan"})
    run = wait_until_final(client, flow_run_id, lambda: prefect_server.children_output())

    assert run.state is not None
    if approve:
        assert run.state.is_completed(), run.state
        assert target.client().dbsize() == 200
        assert any("on-call: checked the plan" in line for line in logs_once_delivered(client, flow_run_id))
    else:
        assert run.state.is_failed()
        assert (
            run.state.message
            == "the restore was not approved (resumed without 'approve'): nothing was touched"
        )
        assert target.client().dbsize() == 0


def test_a_protected_restore_nobody_approves_fails_and_touches_nothing(
    client: SyncPrefectClient,
    served: UUID,
    prefect_server: PrefectServer,
    protected_restore: tuple[RedisServer, dict[str, Any]],
) -> None:
    target, parameters = protected_restore
    parameters["request"]["approval_timeout_seconds"] = 10
    deployment = restore_deployment(client)
    flow_run_id = submit_like_the_ui(client, deployment, parameters)

    run = wait_until_final(client, flow_run_id, lambda: prefect_server.children_output())

    assert run.state is not None and run.state.is_failed()
    # The server fails an expired pause itself ("... never resumed"), or the flow does, with its line.
    assert run.state.message in (
        "nobody approved the restore within 10 s: nothing was touched",
        "The flow was failed and never resumed.",
    )
    assert target.client().dbsize() == 0
