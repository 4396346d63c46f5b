"""An environment file registered with a real Prefect server: what the server holds, a run through a
real process worker, and two runs of one instance serialized by its lease.

No `from __future__ import annotations`: the flows are loaded by Prefect from the source tree.
"""

import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.concurrency.sync import concurrency

from flows.deploy import Registered, register
from redis_dr.catalog import Catalog
from redis_dr.deployment_plan import deployment_specs
from redis_dr.environment import EnvironmentConfig, load_environment
from redis_dr.run_tags import lease_name
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.redis_servers import TEST_SERVER_CONFIG
from tests.integration.prefect_runs import read_logs, submit_like_the_ui, wait_until_final

pytestmark = pytest.mark.integration

POOL = "redis-dr-citest"


def textfiles(directory: Path) -> Path:
    """node_exporter's textfile directory of the `citest` environment."""
    path = directory / "textfiles"
    path.mkdir(exist_ok=True)
    return path


def environment_file(directory: Path, redis: RedisServer, **changes: Any) -> Path:
    """A `citest` environment: one instance, two file locations, every schedule, Berlin time."""
    data = {
        "environment": "citest",
        "prefect": {"work_pool": POOL, "timezone": "Europe/Berlin", "tags": ["team-sre"]},
        "schedules": {"backup": "0 * * * *", "prune": "20 * * * *", "replicate": "40 */6 * * *",
                      "validate": "0 3 * * *", "restore_test": "0 4 1 * *"},
        "metrics": {"textfile_dir": str(textfiles(directory))},
        "retention": {"keep_last": 5, "keep_daily": 7},
        "instances": {"sessions": {
            "redis_url": redis.url,
            "storage": [f"file://{directory / 'primary'}",
                        {"url": f"file://{directory / 'second'}", "retention": {"keep_last": 2}}],
        }},
        **changes,
    }  # fmt: skip
    path = directory / "citest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer(TEST_SERVER_CONFIG) as server:
        server.client().mset({f"session:{n}": "x" * 50 for n in range(300)})
        yield server


@pytest.fixture(scope="module")
def registered(
    prefect_client: SyncPrefectClient, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[EnvironmentConfig, Registered]:
    """The citest environment registered with the test server (the client's settings point at it)."""
    directory = tmp_path_factory.mktemp("citest")
    environment = load_environment(environment_file(directory, redis))
    return environment, register(environment)


@pytest.fixture(scope="module")
def worker(prefect_server: PrefectServer, registered: Any) -> Iterator[None]:
    """`prefect worker start` polling the environment's work pool."""
    process = prefect_server.spawn(
        [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", POOL,
         "--type", "process", "--prefetch-seconds", "1", "--install-policy", "never"],
        REDIS_DR_LEASE="server",  # the server's leases, as in production
    )  # fmt: skip
    try:
        yield
    finally:
        prefect_server.stop_child(process)


def test_the_server_holds_what_the_environment_file_says(
    prefect_client: SyncPrefectClient, registered: tuple[EnvironmentConfig, Registered]
) -> None:
    environment, outcome = registered
    specs = deployment_specs(environment)
    assert sorted(outcome.deployments) == sorted(spec.full_name for spec in specs)
    assert len(specs) == 6  # backup, restore, prune, replicate, validate, restore test (no AOF: no file target)
    for spec in specs:
        deployment = prefect_client.read_deployment_by_name(spec.full_name)
        assert deployment.work_pool_name == POOL
        assert deployment.parameters == spec.parameters
        assert sorted(deployment.tags) == sorted(spec.tags)
        assert deployment.description == spec.description
        assert deployment.parameter_openapi_schema is not None  # the UI renders the form from it
        schedules = [(s.schedule.cron, s.schedule.timezone, s.parameters)  # type: ignore[union-attr]
                     for s in deployment.schedules]  # fmt: skip
        assert schedules == [(s.cron, s.timezone, s.parameters) for s in spec.schedules], spec.full_name
    prune = prefect_client.read_deployment_by_name("redis-prune/citest-sessions")
    assert prune.schedules[0].parameters["request"]["apply"] is True
    assert "apply" not in prune.parameters["request"]
    limit = prefect_client.read_global_concurrency_limit_by_name(lease_name("citest", "sessions"))
    assert limit.limit == 1 and outcome.leases == ["redis-dr-citest-sessions"]
    assert prefect_client.read_work_pool(POOL).type == "process"


def test_registering_again_follows_the_file_and_removes_what_it_no_longer_names(
    prefect_client: SyncPrefectClient, registered: tuple[EnvironmentConfig, Registered], redis: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    environment, _ = registered
    data = yaml.safe_load(environment_file(tmp_path, redis).read_text())
    data["instances"]["sessions"]["storage"] = data["instances"]["sessions"]["storage"][:1]  # no second location
    data["schedules"]["backup"] = "30 */2 * * *"
    del data["schedules"]["validate"]  # validated on demand only from now on
    data["instances"]["sessions"]["redis_url"] = redis.url
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(data))

    outcome = register(load_environment(changed))
    try:
        assert outcome.removed == ["redis-replicate/citest-sessions"]
        backup = prefect_client.read_deployment_by_name("redis-backup/citest-sessions")
        assert [s.schedule.cron for s in backup.schedules] == ["30 */2 * * *"]  # type: ignore[union-attr]
        assert not outcome.work_pool_created
        assert prefect_client.read_deployment_by_name("redis-validate/citest-sessions").schedules == []
    finally:
        register(environment)  # as the module's other tests expect it


def lease_intervals(client: SyncPrefectClient, run: FlowRun) -> tuple[datetime, datetime]:
    """When a run took and released its instance's lease, from its logs (once they arrived)."""
    deadline = time.monotonic() + 30
    while True:
        logs = read_logs(client, run.id)
        taken = [log.timestamp for log in logs if log.message.startswith("holding redis-dr-citest-sessions")]
        released = [log.timestamp for log in logs if log.message == "releasing redis-dr-citest-sessions"]
        if taken and released:
            return taken[0], released[0]
        if time.monotonic() > deadline:
            pytest.fail(f"run {run.name} logged no lease: {[log.message for log in logs]}")
        time.sleep(0.2)


def wait_for_log(client: SyncPrefectClient, run_id: UUID, start: str, output: Any) -> None:
    """Block until the run logged a line that starts with `start`."""
    deadline = time.monotonic() + 120
    while not any(log.message.startswith(start) for log in read_logs(client, run_id)):
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} never logged {start!r}:\n{output()[-3000:]}")
        time.sleep(0.2)


def test_a_deployment_runs_through_a_worker_and_one_instance_runs_one_flow_at_a_time(
    prefect_client: SyncPrefectClient, prefect_server: PrefectServer,
    registered: tuple[EnvironmentConfig, Registered], worker: None,
) -> None:  # fmt: skip
    environment, _ = registered
    output = prefect_server.children_output
    backup_id: UUID = prefect_client.read_deployment_by_name("redis-backup/citest-sessions").id
    validate_id: UUID = prefect_client.read_deployment_by_name("redis-validate/citest-sessions").id
    # Hold the instance's lease here until both runs wait for it, so that they contend for it.
    with concurrency(lease_name("citest", "sessions"), timeout_seconds=60, strict=True):
        run_ids = [submit_like_the_ui(prefect_client, backup_id, {}),
                   submit_like_the_ui(prefect_client, validate_id, {})]  # fmt: skip
        for run_id in run_ids:
            wait_for_log(prefect_client, run_id, "waiting for redis-dr-citest-sessions", output)
    runs = [wait_until_final(prefect_client, run_id, output) for run_id in run_ids]

    backup_run, validate_run = runs
    assert backup_run.state is not None and backup_run.state.is_completed(), (backup_run.state, output()[-3000:])
    assert validate_run.state is not None  # it may have gone first, with nothing to validate yet
    for url in environment.instance("sessions").urls:  # committed in the primary, copied to the second
        assert len(Catalog(open_storage(url), "sessions").list().manifests) >= 1
    # The deployment's metrics parameter: the backup's success, and how old it may get, per location.
    assert environment.metrics.textfile_dir is not None
    written = "".join(path.read_text() for path in Path(environment.metrics.textfile_dir).glob("*.prom"))
    assert 'redis_dr_last_success_timestamp_seconds{environment="citest",instance="sessions"' in written
    assert "redis_dr_max_age_seconds" in written and "redis_last_backup_timestamp_seconds" in written
    a, b = (lease_intervals(prefect_client, run) for run in runs)
    assert a[1] <= b[0] or b[1] <= a[0], f"the runs held the lease together: {a} and {b}"
