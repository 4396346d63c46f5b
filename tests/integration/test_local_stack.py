"""`make up` / `make down`: the local stack starts, registers every flow, runs one, and leaves nothing.

It runs `infra/local_stack.py` as the Makefile does, in a directory and on a port of its own.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from redis_dr.catalog import Catalog
from redis_dr.sandbox.ports import free_port
from redis_dr.storage import open_storage
from tests.fixtures.prefect_server import ROOT
from tests.integration.prefect_runs import submit_like_the_ui, wait_until_final

pytestmark = pytest.mark.integration

STACK_SCRIPT = ROOT / "infra" / "local_stack.py"
FLOWS = {
    "redis-backup", "redis-restore", "redis-prune", "redis-replicate", "redis-validate", "redis-restore-test",
    "redis-drill",
}  # fmt: skip


def stack(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STACK_SCRIPT), command], env=env, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def processes_in(directory: Path) -> list[str]:
    """Command lines of the processes whose command line or working directory is inside `directory`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and (str(directory) in argv or cwd.startswith(str(directory))):
            found.append(argv)
    return found


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict[str, object]]]:
    """The stack up on a free port in a directory of its own; down at the end whatever happened."""
    directory = tmp_path_factory.mktemp("stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "REDIS_DR_LEASE"}
    env.update(REDIS_DR_STACK_DIR=str(directory), REDIS_DR_STACK_PORT=str(free_port()),
               REDIS_DR_STACK_SESSIONS="300")  # fmt: skip
    up = stack("up", env)
    try:
        assert up.returncode == 0, (up.stdout, up.stderr, (directory / "supervisor.log").read_text())
        yield env, json.loads((directory / "stack.json").read_text())
    finally:
        down = stack("down", env)
        assert down.returncode == 0, down.stderr


def test_up_registers_every_flow_and_a_run_of_the_form_completes_then_down_leaves_nothing(
    local_stack: tuple[dict[str, str], dict[str, object]],
) -> None:
    env, state = local_stack
    directory = Path(env["REDIS_DR_STACK_DIR"])
    api_url = f"{state['ui']}/api"
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        assert isinstance(client, SyncPrefectClient)
        deployments = client.read_deployments()
        flows = {flow.id: flow.name for flow in client.read_flows()}
        assert {flows[d.flow_id] for d in deployments} == FLOWS
        assert {d.name for d in deployments} == {"local-sessions"}
        backup = client.read_deployment_by_name("redis-backup/local-sessions")
        run = wait_until_final(client, submit_like_the_ui(client, backup.id, {}), lambda: "")
        assert run.state is not None and run.state.is_completed(), run.state
    for url in (f"file://{state['backups']}",):
        assert len(Catalog(open_storage(url), "sessions").list().manifests) == 1

    down = stack("down", env)
    assert down.returncode == 0 and "the local stack is down" in down.stdout, down
    assert processes_in(directory) == []
    assert stack("down", env).stdout.strip() == "the local stack is not running"
