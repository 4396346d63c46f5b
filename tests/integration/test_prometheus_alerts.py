"""A real Prometheus with the shipped rules, fed by `redis-dr backup --pushgateway`: a failing
backup makes its alert fire, a later successful one clears it.

The rules are loaded as shipped: RedisBackupJobFailed has no `for:`, so it fires at the first
evaluation after the scrape that sees the failure (both every second here).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redis_dr.sandbox.redis_server import RedisServer
from tests.fixtures.prometheus_servers import Prometheus, Pushgateway
from tests.integration.cli import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

ALERT = "RedisBackupJobFailed"
#: How long Prometheus may take to scrape, evaluate and change an alert (1 s intervals).
DEADLINE = 30.0


def alerts_of(server: Prometheus, instance: str) -> list[dict[str, Any]]:
    """The RedisBackupJobFailed alerts of one instance, pending or firing."""
    return [
        a
        for a in server.alerts()
        if a["labels"]["alertname"] == ALERT and a["labels"]["instance"] == instance
    ]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll Prometheus until the condition holds; fail after DEADLINE naming what did not happen."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {DEADLINE:.0f} s"
        time.sleep(0.2)


def test_a_failing_backup_fires_its_alert_and_a_later_success_clears_it(
    redis_factory: Callable[..., RedisServer],
    pushgateway: Pushgateway,
    prometheus: Prometheus,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)  # the CLI moves a URL's password there
    server = redis_factory(password="right-horse-battery")
    server.client().set("session:1", "x")
    instance = f"alerts-{uuid.uuid4().hex[:6]}"
    storage = f"file://{tmp_path / 'backups'}"
    (tmp_path / "backups").mkdir()
    common = ["backup", "--storage", storage, "--instance", instance, "--pushgateway", pushgateway.url]

    wrong = f"redis://:wrong-staple-42@127.0.0.1:{server.port}/0"
    code, _, err = run_cli(capsys, *common, "--redis-url", wrong)
    assert code == 4, err
    wait_for(
        lambda: any(alert["state"] == "firing" for alert in alerts_of(prometheus, instance)),
        f"{ALERT} of {instance} did not fire",
    )
    (alert,) = alerts_of(prometheus, instance)
    assert alert["labels"]["location"] == storage
    assert alert["labels"]["severity"] == "warning"
    assert f"The last backup of {instance}" in alert["annotations"]["summary"]

    # The success also writes to a textfile directory that does not exist: a warning, not a failure.
    missing = tmp_path / "no-such-dir"
    monkeypatch.setenv("REDIS_PASSWORD", "right-horse-battery")
    good = f"redis://127.0.0.1:{server.port}/0"
    code, out, err = run_cli(capsys, *common, "--redis-url", good, "--textfile-dir", str(missing))
    assert code == 0, err
    assert out.strip()
    assert f"metrics not written to {missing}: it does not exist" in err
    wait_for(lambda: not alerts_of(prometheus, instance), f"{ALERT} of {instance} did not clear")
    (age,) = prometheus.query(f'time() - redis_last_backup_timestamp_seconds{{instance="{instance}"}}')
    assert float(age["value"][1]) < 600
