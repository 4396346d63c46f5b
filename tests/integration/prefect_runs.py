"""Talking to the test Prefect server as the UI does: submit runs of deployments, wait, read logs."""

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun, Log
from prefect.client.schemas.sorting import LogSort

from tests.fixtures.prefect_server import PrefectServer

RUN_SECONDS = 180.0


def wait_for_deployment(client: SyncPrefectClient, server: PrefectServer, name: str, process: Any) -> UUID:
    """The deployment's id, once the process that registers it has done so."""
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        try:
            return client.read_deployment_by_name(name).id
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} was not registered:\n{server.child_output(process)[-3000:]}")
            time.sleep(0.2)


def submit_like_the_ui(client: SyncPrefectClient, deployment_id: UUID, parameters: dict[str, Any]) -> UUID:
    """Create a run of the deployment with the form's JSON parameters, as the UI's Run button does."""
    return client.create_flow_run_from_deployment(deployment_id, parameters=parameters).id


def wait_until_final(client: SyncPrefectClient, flow_run_id: UUID, output: Callable[[], str]) -> FlowRun:
    """The flow run once its state is final."""
    deadline = time.monotonic() + RUN_SECONDS
    while True:
        run = client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {flow_run_id} is {run.state!r} after {RUN_SECONDS:.0f}s:\n{output()[-4000:]}")
        time.sleep(0.2)


def logs_once_delivered(client: SyncPrefectClient, flow_run_id: UUID, min_level: int = 0) -> list[str]:
    """The run's log lines once the flow engine's last one ("Finished in state") reached the server."""
    deadline = time.monotonic() + 30
    while True:
        logs = read_logs(client, flow_run_id)
        finished = any(
            log.task_run_id is None and log.message.startswith("Finished in state") for log in logs
        )
        if finished or time.monotonic() > deadline:
            return [log.message for log in logs if log.level >= min_level]
        time.sleep(0.2)


def read_logs(client: SyncPrefectClient, flow_run_id: UUID) -> list[Log]:
    """Every log of a flow run (its tasks' too), oldest first."""
    return client.read_logs(
        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
        sort=LogSort.TIMESTAMP_ASC,
        limit=200,
    )
