"""Restores by replay through the flow and the CLI: keys written into a live server, no restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.backup import backup
from flows.restore import restore
from redis_dr.config import build_request
from redis_dr.restore.request import build_restore_request
from redis_dr.sandbox.redis_server import RedisServer
from tests.integration.cli import run_cli
from tests.integration.datasets import assert_holds, fill_every_type, read_dataset

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture
def backed_up(redis_factory: Callable[..., RedisServer], tmp_path: Path) -> tuple[RedisServer, str]:
    """A source server of every type, and the storage holding its backup."""
    server = redis_factory()
    fill_every_type(server.client())
    storage = f"file://{tmp_path / 'backups'}"
    backup(build_request(instance="sessions", redis_url=server.url, storage=[storage]))
    return server, storage


def test_replay_with_flush_makes_the_live_server_hold_exactly_the_backup(
    backed_up: tuple[RedisServer, str], redis_factory: Callable[..., RedisServer]
) -> None:
    source, storage = backed_up
    target = redis_factory()
    target.client().set("junk", "x")
    pid = target.client().info("server")["process_id"]

    outcome = restore(
        build_restore_request(instance="sessions", storage=storage, redis_url=target.url, flush=True,
                              checkpoint=False),
        approved=True,
    )  # fmt: skip

    assert outcome.strategy == "replay"
    assert_holds(read_dataset(source.client()), target.client())
    assert target.client().info("server")["process_id"] == pid  # never restarted
    assert {"load", "replay", "verify"} <= set(outcome.phases)
    names = {f.name: f.result.value for f in outcome.verification.findings}
    assert names["sampled keys"] == "pass" and names["keys loaded"] == "pass"


def test_replay_of_sessions_only_leaves_every_other_key_alone(
    backed_up: tuple[RedisServer, str], redis_factory: Callable[..., RedisServer], capsys: pytest.CaptureFixture[str]
) -> None:
    source, storage = backed_up
    target = redis_factory()
    target.client().set("user:1", "the target's own")
    target.client().set("session:0", "stale", ex=60)

    code, out, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                             "--target", target.url, "--match", "session:*", "--yes", "--json")  # fmt: skip

    assert code == 0, err
    result = json.loads(out)
    assert result["strategy"] == "replay"
    assert target.client().get("user:1") == b"the target's own"  # outside the pattern: untouched
    assert target.client().get("session:0") == source.client().get("session:0")  # replaced
    sessions = {k for k in source.client().scan_iter(match="session:*", count=1000)}
    assert sessions <= set(target.client().scan_iter(match="session:*", count=1000))
    assert target.client().exists("counter") == 0  # not a session: not replayed
    assert result["checkpoint_id"]  # the live data was backed up first
