"""Hostile use of the issue-8 work through its real entry points: a prune while a backup is in
progress, and the local stack started twice at once or stopped while it starts."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

from flows.deploy import PAGE, register
from redis_dr.catalog import Catalog
from redis_dr.environment import load_environment
from redis_dr.errors import ConfigError, IntegrityError, NotFoundError, TransientError
from redis_dr.prune import plan_prune
from redis_dr.retention import RetentionPolicy
from redis_dr.sandbox.ports import free_port
from redis_dr.storage.file import FileStorage
from tests.fixtures.prefect_server import ROOT
from tests.integration.cli import assert_one_clear_error, run_cli
from tests.integration.test_prune import INSTANCE, store_backup, store_uncommitted

pytestmark = pytest.mark.integration

STACK_SCRIPT = ROOT / "infra" / "local_stack.py"


@pytest.mark.usefixtures("prefect_harness")
def test_a_prune_while_a_backup_is_in_progress_leaves_it_and_removes_the_old_orphan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Data without a manifest used to crash the flow ('list' object is not callable) whatever its age."""
    store = FileStorage(f"{tmp_path}/store")
    now = datetime.now(UTC)
    kept = store_backup(store, now - timedelta(hours=1))
    old = store_uncommitted(store, now - timedelta(days=3), reserved_at=now - timedelta(days=3))
    live = store_uncommitted(store, now - timedelta(minutes=1))
    days_ago = (now - timedelta(days=3)).timestamp()
    for path in Path(tmp_path, "store", INSTANCE, old).iterdir():  # nothing written to it for days
        os.utime(path, (days_ago, days_ago))
    args = ["prune", "--storage", store.url, "--instance", INSTANCE, "--keep-last", "1"]

    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    rows = {(row["kind"], row["backup_id"]): row["action"] for row in json.loads(out)}
    assert rows == {("backup", kept.id): "keep", ("orphan", old): "remove", ("in-progress", live): "keep"}

    code, out, err = run_cli(capsys, *args, "--apply", "--json")
    assert code == 0, err
    backup_ids = set(Catalog(store, INSTANCE).backup_ids())
    assert backup_ids == {kept.id, live}


def stack(command: str, directory: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(REDIS_DR_STACK_DIR=str(directory), REDIS_DR_STACK_PORT="1", REDIS_DR_STACK_SESSIONS="10")
    return subprocess.run(
        [sys.executable, str(STACK_SCRIPT), command], env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def test_a_second_up_while_the_stack_starts_starts_nothing(tmp_path: Path) -> None:
    """Two `make up` at once used to start two supervisors sharing one directory and port; `down` then
    stopped one of them only."""
    fd = os.open(tmp_path / "stack.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a starting supervisor holds
        up = stack("up", tmp_path)
    finally:
        os.close(fd)
    assert up.returncode == 1, up.stdout + up.stderr
    assert "starting already" in up.stdout
    assert not (tmp_path / "supervisor.log").exists()
    assert not (tmp_path / "supervisor.pid").exists()


def test_down_while_the_stack_starts_stops_its_supervisor(tmp_path: Path) -> None:
    """A stack still starting has no stack.json yet: `down` used to say 'not running' and leave it."""
    fake = tmp_path / "bin" / "local_stack.py"
    fake.parent.mkdir()
    fake.write_text("import time\nwhile True:\n    time.sleep(1)\n")
    supervisor = subprocess.Popen([sys.executable, str(fake), "supervise"], stdin=subprocess.DEVNULL)
    try:
        (tmp_path / "supervisor.pid").write_text(str(supervisor.pid))
        down = stack("down", tmp_path)
        assert down.returncode == 0, down.stderr
        assert "the local stack is down" in down.stdout
        assert supervisor.wait(timeout=60) is not None
        assert not (tmp_path / "supervisor.pid").exists()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()


def test_down_leaves_a_process_that_reused_a_dead_supervisors_pid_alone(tmp_path: Path) -> None:
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], stdin=subprocess.DEVNULL
    )
    try:
        (tmp_path / "supervisor.pid").write_text(str(stranger.pid))
        down = stack("down", tmp_path)
        assert down.returncode == 0, down.stderr
        assert "not running" in down.stdout
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.usefixtures("prefect_harness")
def test_replicating_from_a_location_without_backups_fails_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A mistyped --storage or --instance used to report success: 'copied 0 backup(s) ... lag 0s'."""
    source, destination = f"file://{tmp_path}/typo", f"file://{tmp_path}/copy"
    code, out, err = run_cli(
        capsys, "replicate", "--storage", source, "--to", destination, "--instance", INSTANCE
    )
    assert code == NotFoundError.exit_code, err
    assert_one_clear_error(err, f"no backups of instance {INSTANCE} in {source}", "nothing to replicate")
    assert out == ""
    assert not Path(tmp_path, "copy").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_validating_an_unknown_backup_names_the_location_once_per_part(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = FileStorage(f"{tmp_path}/store")
    store_backup(store, datetime.now(UTC))
    unknown = "20991231T000000Z"
    args = ["validate", "--storage", store.url, "--instance", INSTANCE, "--backup", unknown]
    code, out, err = run_cli(capsys, *args)
    assert code == NotFoundError.exit_code, err
    line = assert_one_clear_error(err, f"no backup {unknown}")
    assert line.count(store.url) == 2, line  # the summary's location, and the error's (was 3)
    assert (
        out.strip()
        == f"FAILED cannot choose the backups to validate: no backup {unknown} of instance "
        + (f"{INSTANCE} in {store.url}")
    )


def test_deploy_to_a_dead_prefect_api_says_to_start_a_server(tmp_path: Path) -> None:
    """The shared hint 'unset PREFECT_API_URL to run with a temporary local API' is wrong for deploy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{free_port()}/api"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("redis-dr")), "deploy", "--env-file", str(ROOT / "deployments" / "staging.yaml")],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == TransientError.exit_code, done.stderr
    line = assert_one_clear_error(done.stderr, "does not answer", "prefect server start", "--dry-run")
    assert "unset PREFECT_API_URL" not in line
    assert done.stderr.count("\n") == 1, done.stderr


def test_a_backup_dated_in_the_future_stops_the_prune_before_it_expires_the_others(tmp_path: Path) -> None:
    """keep-within counts from the newest backup: one from a wrong clock (2099) used to leave only min-keep."""
    store = FileStorage(f"{tmp_path}/store")
    now = datetime.now(UTC)
    for days in range(1, 6):
        store_backup(store, now - timedelta(days=days))
    wrong = store_backup(store, datetime(2099, 1, 1, tzinfo=UTC))
    with pytest.raises(IntegrityError, match=f"backup {wrong.id} is dated 2099-01-01 00:00 UTC, after now"):
        plan_prune(store, INSTANCE, RetentionPolicy.model_validate({"keep_within": "30d"}), now)
    assert len(Catalog(store, INSTANCE).list().manifests) == 6


def test_deploy_on_a_server_with_many_flows_keeps_what_it_registered(
    prefect_client: SyncPrefectClient, tmp_path: Path
) -> None:
    """The server answers 200 flows unless told: beyond them, every deployment just registered was taken
    for a stale one and deleted ('removed ?/hostile-s'), leaving the environment without schedules."""
    for number in range(PAGE + 5):  # flows of other projects, listed before redis-*
        prefect_client.create_flow_from_name(f"a-other-project-{number:03d}")
    env_file = tmp_path / "hostile.yaml"
    env_file.write_text(
        "environment: hostile\nprefect: {work_pool: redis-dr-hostile}\n"
        'schedules: {backup: "0 * * * *"}\nretention: {keep_last: 2}\n'
        f"instances:\n  s:\n    redis_url: redis://127.0.0.1:{free_port()}\n"
        f"    storage: [file://{tmp_path}/one, file://{tmp_path}/two]\n"
    )
    environment = load_environment(env_file)
    try:
        first = register(environment)
        assert first.removed == []
        tags = DeploymentFilterTags(all_=["redis-dr", "env:hostile"])
        held = prefect_client.read_deployments(deployment_filter=DeploymentFilter(tags=tags))
        assert len(held) == len(first.deployments) == 6  # with the restore test
        backup = prefect_client.read_deployment_by_name("redis-backup/hostile-s")
        assert [s.schedule.cron for s in backup.schedules] == ["0 * * * *"]  # type: ignore[union-attr]
    finally:
        tags = DeploymentFilterTags(all_=["redis-dr", "env:hostile"])
        for deployment in prefect_client.read_deployments(deployment_filter=DeploymentFilter(tags=tags)):
            prefect_client.delete_deployment(deployment.id)


def test_deploy_refuses_a_work_pool_of_another_type(
    prefect_client: SyncPrefectClient, tmp_path: Path
) -> None:
    """It registered onto a kubernetes pool and said to start a worker there: no run would ever work."""
    prefect_client.create_work_pool(WorkPoolCreate(name="hostile-kubernetes", type="kubernetes"))
    env_file = tmp_path / "hostile.yaml"
    env_file.write_text(
        "environment: hostilek\nprefect: {work_pool: hostile-kubernetes}\n"
        f"instances:\n  s:\n    redis_url: redis://127.0.0.1:{free_port()}\n    storage: file://{tmp_path}/one\n"
    )
    with pytest.raises(ConfigError, match="work pool hostile-kubernetes exists with type kubernetes"):
        register(load_environment(env_file))
    tags = DeploymentFilterTags(all_=["redis-dr", "env:hostilek"])
    assert prefect_client.read_deployments(deployment_filter=DeploymentFilter(tags=tags)) == []
