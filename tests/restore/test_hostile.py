"""A hostile user and a tired on-call engineer against `redis-dr restore`: odd input, leftovers
of killed runs, secrets where they do not belong. Each test proves one defect stays fixed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from redis_dr.errors import ConfigError
from redis_dr.restore.request import build_restore_request
from redis_dr.sandbox.redis_server import RedisServer
from tests.integration.cli import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture
def storage(
    redis_factory: Callable[..., RedisServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> str:
    """A file location holding one backup of a small session store."""
    server = redis_factory()
    server.client().mset({f"session:{i}": i for i in range(20)})
    url = f"file://{tmp_path / 'backups'}"
    code, _, err = run_cli(
        capsys, "backup", "--redis-url", server.url, "--storage", url, "--instance", "sessions"
    )
    assert code == 0, err
    return url


def recorded_runs_text() -> str:
    """Every flow run's parameters and every log line the Prefect API holds, as text."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        logs = client.read_logs()
    return json.dumps([run.parameters for run in runs], default=str) + "\n".join(log.message for log in logs)


def test_a_password_in_a_redis_target_url_never_reaches_the_flow_run(
    storage: str, redis_factory: Callable[..., RedisServer], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    secret = "Tr0ub4dor-hostile-9"
    target = redis_factory(password=secret)
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    code, out, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                             "--target", f"redis://:{secret}@127.0.0.1:{target.port}/0", "--yes",
                             "--no-checkpoint", "--json")  # fmt: skip
    assert code == 0, err
    assert target.client().get("session:3") == b"3"
    assert secret not in out + err
    assert secret not in recorded_runs_text()


def test_a_request_naming_a_redis_target_with_a_password_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as refused:
        build_restore_request(
            instance="sessions", storage="file:///tmp/b", target="redis://:Hidden-77@127.0.0.1:6379/0"
        )
    assert "password" in str(refused.value) and "Hidden-77" not in str(refused.value)
