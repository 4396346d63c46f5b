"""The backup flow under Prefect: retries only transient errors, leaves a readable artifact."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.sorting import TaskRunSort

from flows.backup import backup
from redis_dr.catalog import Catalog
from redis_dr.config import SecretRef, build_request
from redis_dr.errors import AccessDeniedError, NotFoundError, RedisDRError, TransientError
from redis_dr.fetch import fetch_to_file
from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage
from tasks.policy import is_transient
from tests.fixtures.storage_servers import TEST_BUCKET
from tests.servers.fakegcs import FakeGCS
from tests.servers.seaweedfs import SeaweedFS

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


# -- what a run tells people, and every storage location -------------------------------------


def table(flow_run_id: UUID, key: str = "backup-sessions") -> dict[str, str]:
    """The rows of the table artifact a flow run left under `key`, as field -> value."""
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[key])
            )
        )
    rows = json.loads(str(artifact.data))
    return {row["field"]: row["value"] for row in rows}


def committed_ids(url: str, instance: str = "sessions") -> list[str]:
    """Ids of the committed backups of `instance` listed in a location."""
    storage = open_storage(url)
    try:
        listing = Catalog(storage, instance).list()
        assert not listing.unreadable
        return [manifest.id for manifest in listing.manifests]
    finally:
        storage.close()


def test_the_artifact_counts_the_servers_wait_apart_from_the_transfer(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_factory({"repl-diskless-sync-delay": "2"})  # waits 1-2 s (whole seconds of idle)
    server.client().mset({f"session:{n}": "x" * 1000 for n in range(2000)})
    request = build_request(instance="sessions", redis_url=server.url, storage=f"file://{tmp_path}")

    state = backup(request, return_state=True)
    manifest = state.result()

    assert manifest.wait_seconds is not None and manifest.wait_seconds >= 1.0
    rows = table(state.state_details.flow_run_id)
    match = re.fullmatch(
        r"(\d+\.\d) s: waited (\d+\.\d) s for the server, then (\d+\.\d) s transfer at \d+ MB/s",
        rows["data path"],
    )
    assert match, rows["data path"]
    assert float(match.group(2)) >= 1.0
    assert rows["environment"] == "—"  # not set: a dash, never an empty cell nor "-" (both a bullet in the UI)
    assert all(value.strip() for value in rows.values()), rows


def test_a_failed_run_says_why_in_one_line_and_where_it_stopped(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    request = build_request(
        instance="sessions", redis_url=f"redis://127.0.0.1:{port}/0", storage=f"file://{tmp_path}"
    )

    state = backup(request, return_state=True)

    line = f"cannot reach Redis at 127.0.0.1:{port}: connection refused"
    assert state.is_failed()
    assert state.message == line
    rows = table(state.state_details.flow_run_id)
    assert rows["status"] == "FAILED at check-redis"
    assert rows["error"] == line
    assert rows["backup id"] == "—"
    assert rows["location 1 (primary)"] == f"file://{tmp_path}: not attempted"


def test_every_task_timeout_exceeds_the_timeouts_of_the_calls_under_it() -> None:
    """An outage must surface as the call's own TransientError (retried), not as a Prefect timeout."""
    from redis_dr.redis.connection import open_client
    from redis_dr.storage.base import MAX_CALL_SECONDS
    from tasks import backup as backup_tasks
    from tasks.policy import REDIS_CHECK_SECONDS, REDIS_CONNECT_SECONDS, REDIS_REPLY_SECONDS

    assert not backup.retries  # retries live in tasks only
    defaults = inspect.signature(open_client).parameters
    assert defaults["connect_timeout"].default == REDIS_CONNECT_SECONDS
    assert defaults["socket_timeout"].default == REDIS_REPLY_SECONDS
    assert backup_tasks.check_redis.timeout_seconds is not None
    assert backup_tasks.check_redis.timeout_seconds > REDIS_CHECK_SECONDS
    storage_tasks = [
        backup_tasks.allocate_backup_id,
        backup_tasks.snapshot_to_storage,
        backup_tasks.commit_manifest,
        backup_tasks.copy_task(2),
    ]
    for storage_task in storage_tasks:
        assert storage_task.timeout_seconds is not None
        assert storage_task.timeout_seconds > 2 * MAX_CALL_SECONDS, storage_task.name
        assert storage_task.retry_condition_fn is is_transient, storage_task.name


@pytest.fixture
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """location(kind) -> URL of a fresh, empty location: file, s3 (SeaweedFS) or gcs (fake-gcs)."""

    def make(kind: str) -> str:
        unique = uuid.uuid4().hex
        if kind == "file":
            return f"file://{tmp_path / unique}"
        if kind == "s3":
            s3: SeaweedFS = request.getfixturevalue("seaweedfs")
            return f"s3://{TEST_BUCKET}/{unique}?endpoint={s3.endpoint}&region=us-east-1"
        gcs: FakeGCS = request.getfixturevalue("fake_gcs")
        return f"gs://{TEST_BUCKET}/{unique}?endpoint={gcs.endpoint}"

    return make


def fetched_rdb(url: str, backup_id: str, output: Path) -> bytes:
    """The RDB of a backup fetched back from one location, every byte checked against its manifest."""
    storage = open_storage(url)
    try:
        manifest = Catalog(storage, "sessions").load(backup_id)
        return fetch_to_file(storage, manifest, output, identities=[]).read_bytes()
    finally:
        storage.close()


@pytest.mark.parametrize(("primary", "other"), [("file", "s3"), ("s3", "gcs")])
def test_a_backup_is_committed_in_every_location(
    primary: str,
    other: str,
    location: Callable[[str], str],
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    redis_server.client().mset({f"session:{n}": str(n) * 50 for n in range(300)})
    urls = [location(primary), location(other)]
    request = build_request(instance="sessions", redis_url=redis_server.url, storage=urls)

    state = backup(request, return_state=True)
    manifest = state.result()

    assert [committed_ids(url) for url in urls] == [[manifest.id], [manifest.id]]
    first = fetched_rdb(urls[0], manifest.id, tmp_path / "first.rdb")
    second = fetched_rdb(urls[1], manifest.id, tmp_path / "second.rdb")
    assert first == second
    assert hashlib.sha256(first).hexdigest() == manifest.files[0].raw_sha256
    rows = table(state.state_details.flow_run_id)
    assert rows["location 1 (primary)"].endswith(f": committed {manifest.id}")
    assert re.search(r": copied .* \((server-side|streamed)\), verified$", rows["location 2 (copy 2)"])


def test_a_failed_copy_fails_the_run_but_keeps_the_primary_and_the_other_copies(
    location: Callable[[str], str], redis_server: RedisServer, fake_gcs: FakeGCS
) -> None:
    redis_server.client().set("session:1", "x")
    primary, good = location("file"), location("gcs")
    closed = f"s3://{TEST_BUCKET}/x?endpoint=http://127.0.0.1:{free_port()}&region=us-east-1"
    missing = f"gs://no-such-bucket-{uuid.uuid4().hex[:8]}/x?endpoint={fake_gcs.endpoint}"
    request = build_request(
        instance="sessions", redis_url=redis_server.url, storage=[primary, closed, missing, good]
    )

    state = backup(request, return_state=True)

    assert state.is_failed()
    message = str(state.message)
    [backup_id] = committed_ids(primary)
    assert "\n" not in message
    assert closed in message and missing in message and good not in message
    assert message.startswith(f"backup {backup_id} is committed in {primary}, but its copy to 2 of 3")
    assert committed_ids(good) == [backup_id]  # the copy after the failed ones was still made
    with pytest.raises(RedisDRError):
        state.result()
    storage = open_storage(missing)
    try:
        with pytest.raises(NotFoundError):
            storage.stat(f"sessions/{backup_id}/manifest.json")
    finally:
        storage.close()
    rows = table(state.state_details.flow_run_id)
    assert rows["status"].startswith(f"FAILED at copy to {closed}")
    assert rows["location 2 (copy 2)"].startswith(f"{closed}: FAILED: ")
    assert rows["location 4 (copy 4)"].endswith("verified")


@pytest.mark.filterwarnings("ignore:Logger .* without a flow run id")
def test_run_logs_keep_the_traceback_of_our_errors_at_debug_level_only() -> None:
    from tasks.run_logs import one_line_errors

    one_line_errors()
    logger = logging.getLogger("prefect.task_runs")
    seen: list[tuple[int, str, bool]] = []  # level, message, has a traceback: as the handler saw it
    handler = logging.Handler()
    handler.emit = lambda r: seen.append((r.levelno, r.getMessage(), r.exc_info is not None))  # type: ignore[method-assign]
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        for error in (
            TransientError("cannot reach Redis at 127.0.0.1:1: connection refused"),
            KeyError("bug"),
        ):
            try:
                raise error
            except Exception:
                logger.error(
                    "Task run failed with exception: %r - Retries are exhausted", error, exc_info=True
                )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

    [(debug, detail, debug_tb), (error, line, error_tb), (bug, _, bug_tb)] = seen
    assert (debug, error, bug) == (logging.DEBUG, logging.ERROR, logging.ERROR)
    assert debug_tb and "connection refused" in detail  # the traceback, at DEBUG
    assert not error_tb and "connection refused" in line  # the one line only
    assert bug_tb  # anything else keeps its traceback
