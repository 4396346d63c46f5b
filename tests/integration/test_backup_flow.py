"""The backup flow under Prefect: retries only transient errors, leaves a readable artifact."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.sorting import TaskRunSort

from flows.backup import backup
from redis_dr.config import SecretRef, build_request
from redis_dr.errors import AccessDeniedError
from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def run_counts(flow_run_id: UUID) -> dict[str, int]:
    """How often each task of a flow run was attempted, by task name."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            limit=50,
        )
    return {run.name.rsplit("-", 1)[0]: run.run_count for run in runs}


def test_flow_commits_and_leaves_a_table_artifact(redis_server: RedisServer, tmp_path: Path) -> None:
    redis_server.client().set("session:1", "x", ex=600)
    request = build_request(
        instance="web_sessions",
        redis_url=redis_server.url,
        storage=f"file://{tmp_path}",
        labels={"ticket": "OPS-1"},
    )
    state = backup(request, return_state=True)
    manifest = state.result()

    assert manifest.labels == {"ticket": "OPS-1"}
    assert manifest.source.total_keys == 1
    assert (tmp_path / "web_sessions" / manifest.id / "manifest.json").exists()
    artifact = Artifact.get("backup-web-sessions")  # the latest artifact with this key
    assert artifact is not None
    assert artifact.flow_run_id == state.state_details.flow_run_id
    assert artifact.type == "table"
    assert manifest.id in str(artifact.data)
    assert "sha256" in str(artifact.data)


def test_transient_errors_are_retried_until_redis_comes_back(tmp_path: Path) -> None:
    port = free_port()
    server = RedisServer(port=port)
    listener = socket.create_server(("127.0.0.1", port))

    def refuse_once_then_start_redis() -> None:
        """The first attempt meets a server that hangs up; then the real Redis takes the port."""
        conn, _ = listener.accept()
        conn.close()
        listener.close()
        server.start()

    starter = threading.Thread(target=refuse_once_then_start_redis, daemon=True)
    starter.start()
    try:
        request = build_request(
            instance="sessions", redis_url=f"redis://127.0.0.1:{port}/0", storage=f"file://{tmp_path}"
        )
        state = backup(request, return_state=True)
        assert state.is_completed(), state.message
        counts = run_counts(state.state_details.flow_run_id)
        assert counts["check-redis"] >= 2
        assert counts["snapshot-to-storage"] == 1
    finally:
        starter.join()
        server.stop()


def test_permanent_errors_are_not_retried(
    redis_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = redis_factory(password="the-right-one")
    monkeypatch.setenv("SESSIONS_REDIS_PASSWORD", "a-wrong-one")
    request = build_request(
        instance="sessions",
        redis_url=server.url,
        storage=f"file://{tmp_path}",
        password=SecretRef(env="SESSIONS_REDIS_PASSWORD"),
    )
    started = time.monotonic()
    state = backup(request, return_state=True)
    assert state.is_failed()
    with pytest.raises(AccessDeniedError):
        state.result()
    assert run_counts(state.state_details.flow_run_id) == {"check-redis": 1}
    assert time.monotonic() - started < 30


def test_password_from_a_prefect_secret_block(redis_factory, tmp_path: Path) -> None:
    from prefect.blocks.system import Secret

    server = redis_factory(password="from-the-block")
    server.client().set("k", "v")
    Secret(value="from-the-block").save("sessions-redis-password", overwrite=True)
    request = build_request(
        instance="sessions",
        redis_url=server.url,
        storage=f"file://{tmp_path}",
        password=SecretRef(prefect_secret="sessions-redis-password"),
    )
    manifest = backup(request)
    assert manifest.source.total_keys == 1
    assert "from-the-block" not in manifest.to_json().decode()


def test_fetch_decrypts_with_an_identity_from_a_secret_block(
    redis_server: RedisServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyrage
    from prefect.blocks.system import Secret

    from tests.integration.cli import run_cli

    identity = pyrage.x25519.Identity.generate()
    Secret(value=f"# backup key\n{identity}\n").save("redis-dr-age-identity", overwrite=True)
    monkeypatch.delenv("REDIS_DR_AGE_IDENTITY", raising=False)
    redis_server.client().set("k", "v")
    storage = f"file://{tmp_path / 'store'}"
    base = ["--storage", storage, "--instance", "sessions"]
    code, _, err = run_cli(
        capsys, "backup", "--redis-url", redis_server.url, *base, "--encrypt-to", str(identity.to_public())
    )
    assert code == 0, err
    output = tmp_path / "out.rdb"
    code, _, err = run_cli(
        capsys, "fetch", *base, "--output", str(output), "--age-identity-secret", "redis-dr-age-identity"
    )
    assert code == 0, err
    assert output.read_bytes().startswith(b"REDIS0010")
    assert str(identity) not in err
