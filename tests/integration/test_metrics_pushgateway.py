"""The Pushgateway sink against a real Pushgateway: a failure keeps the last success; errors are one line."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from redis_dr.errors import AccessDeniedError, NotFoundError, PermanentError, TransientError
from redis_dr.metrics.model import Operation, RunMetrics, groups_of
from redis_dr.metrics.publish import publish
from redis_dr.metrics.pushgateway import push_groups
from redis_dr.metrics.targets import MetricsTargets
from redis_dr.sandbox.ports import free_port
from tests.fixtures.prometheus_servers import Pushgateway
from tests.integration.prefect_runs import logs_once_delivered

pytestmark = pytest.mark.integration

FIRST = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
LATER = FIRST + timedelta(hours=1)


def run(instance: str, succeeded: bool, at: datetime, **figures: object) -> RunMetrics:
    return RunMetrics.model_validate({
        "operation": Operation.BACKUP, "environment": "staging", "instance": instance,
        "location": "s3://backups/redis?region=eu-central-1&endpoint=http://127.0.0.1:8333",
        "succeeded": succeeded, "finished_at": at, "duration_seconds": 2.0, "primary": True, **figures,
    })  # fmt: skip


def of_instance(gateway: Pushgateway, instance: str) -> dict[str, float]:
    """The gateway's redis-dr gauges of one instance: name -> value (one sample each)."""
    found: dict[str, float] = {}
    for name, samples in gateway.families().items():
        mine = [value for labels, value in samples if labels.get("instance") == instance]
        if mine:
            (found[name],) = mine
    return found


def test_a_failure_keeps_the_last_success_and_a_success_replaces_it(pushgateway: Pushgateway) -> None:
    instance = f"i{uuid.uuid4().hex[:8]}"
    publish(
        MetricsTargets(pushgateway=pushgateway.url),
        [run(instance, True, FIRST, size_bytes=4096, key_count=7)],
    )
    publish(MetricsTargets(pushgateway=pushgateway.url), [run(instance, False, LATER)])
    found = of_instance(pushgateway, instance)
    assert found["redis_dr_last_success_timestamp_seconds"] == FIRST.timestamp()
    assert found["redis_dr_last_success_size_bytes"] == 4096
    assert found["redis_last_backup_timestamp_seconds"] == FIRST.timestamp()
    assert found["redis_dr_last_attempt_timestamp_seconds"] == LATER.timestamp()
    assert found["redis_dr_last_run_success"] == 0
    then = LATER + timedelta(hours=1)
    publish(MetricsTargets(pushgateway=pushgateway.url), [run(instance, True, then, key_count=9)])
    found = of_instance(pushgateway, instance)
    assert found["redis_dr_last_success_timestamp_seconds"] == then.timestamp()
    assert found["redis_dr_last_success_keys"] == 9
    assert found["redis_dr_last_failure_timestamp_seconds"] == LATER.timestamp()
    assert found["redis_dr_last_run_success"] == 1


def test_groups_carry_their_labels_and_the_runbook_gauge_only_instance_and_environment(
    pushgateway: Pushgateway,
) -> None:
    instance = f"i{uuid.uuid4().hex[:8]}"
    pushed = run(instance, True, FIRST)
    assert push_groups(pushgateway.url, groups_of([pushed])) == 2
    families = pushgateway.families()
    (labels,) = [
        labels for labels, _ in families["redis_dr_last_run_success"] if labels["instance"] == instance
    ]
    assert labels == {"job": "redis-dr", **pushed.label_values()}
    (compat,) = [labels for labels, _ in families["redis_last_backup_timestamp_seconds"]
                 if labels["instance"] == instance]  # fmt: skip
    assert compat == {"job": "redis-dr", "environment": "staging", "instance": instance}


def test_an_unreachable_pushgateway_is_transient_and_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TransientError) as caught:
        publish(MetricsTargets(pushgateway=url), [run("sessions", True, FIRST)])
    assert str(caught.value) == f"metrics not pushed to {url}: connection refused"


class Answer(BaseHTTPRequestHandler):
    """Answers every push with the status the server was made with (or never answers)."""

    def do_POST(self) -> None:
        server: AnsweringServer = self.server  # type: ignore[assignment]
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if server.status is None:
            server.release.wait(10)  # no answer: the client's timeout ends it
            return
        body = b"pushed metrics are invalid or inconsistent with existing metrics: example\nmore\n"
        self.send_response(server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class AnsweringServer(ThreadingHTTPServer):
    status: int | None = None
    release = threading.Event()


@pytest.fixture
def answering() -> Iterator[AnsweringServer]:
    server = AnsweringServer(("127.0.0.1", 0), Answer)
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        (503, TransientError, "HTTP 503 Service Unavailable: pushed metrics are invalid"),
        (403, AccessDeniedError, "(the Pushgateway needs no credentials from redis-dr"),
        (404, NotFoundError, "(is the URL the Pushgateway's, with its path prefix if any?)"),
        (400, PermanentError, "HTTP 400 Bad Request: pushed metrics are invalid or inconsistent"),
    ],
)
def test_an_error_status_is_one_line_of_its_kind(
    answering: AnsweringServer, status: int, error: type[Exception], says: str
) -> None:
    answering.status = status
    url = f"http://127.0.0.1:{answering.server_address[1]}"
    with pytest.raises(error) as caught:
        publish(MetricsTargets(pushgateway=url), [run("sessions", False, FIRST)])
    assert type(caught.value) is error
    message = str(caught.value)
    assert message.startswith(f"metrics not pushed to {url}: HTTP {status} ")
    assert says in message
    assert "\n" not in message and "more" not in message


def test_a_pushgateway_that_does_not_answer_times_out(answering: AnsweringServer) -> None:
    answering.status = None
    url = f"http://127.0.0.1:{answering.server_address[1]}"
    with pytest.raises(TransientError) as caught:
        push_groups(url, groups_of([run("sessions", True, FIRST)]), timeout=0.3)
    assert str(caught.value) == f"metrics not pushed to {url}: no answer in 0.3 s"


def test_a_listener_that_closes_at_once_is_transient() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def close_each() -> None:
            connection, _ = listener.accept()
            connection.close()

        thread = threading.Thread(target=close_each, daemon=True)
        thread.start()
        with pytest.raises(TransientError, match=f"metrics not pushed to http://127.0.0.1:{port}: "):
            push_groups(f"http://127.0.0.1:{port}", groups_of([run("sessions", True, FIRST)]), timeout=5)
        thread.join(5)


def run_log_lines(state: Any, min_level: int = 0) -> list[str]:
    """The log lines of the flow run that ended in `state`, as the Prefect API has them."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return logs_once_delivered(client, state.state_details.flow_run_id, min_level)


@pytest.mark.usefixtures("prefect_harness")
def test_a_failing_sink_is_a_warning_and_the_other_sink_still_gets_the_metrics(
    tmp_path: Path,
) -> None:
    from prefect import flow, get_run_logger

    from tasks.metrics import report_metrics

    closed = f"http://127.0.0.1:{free_port()}"

    @flow(name="sink-probe")
    def probe() -> str:
        log = get_run_logger()
        targets = MetricsTargets(pushgateway=closed, textfile_dir=str(tmp_path))
        report_metrics(targets, lambda: [run("sessions", True, FIRST)], log)
        report_metrics(targets, lambda: [run("sessions", True, FIRST, size_bytes=-1)], log)  # a bug measuring
        return "done"

    state = probe(return_state=True)
    assert state.is_completed() and state.result() == "done"
    flow_warnings = [line for line in run_log_lines(state, logging.WARNING) if "Task run" not in line]
    assert flow_warnings[0] == f"metrics not pushed to {closed}: connection refused"
    assert flow_warnings[1] == (
        "metrics not published: measuring the run failed: ValidationError: 1 validation error for RunMetrics"
    )
    assert len(flow_warnings) == 2
    assert f"metrics written to {tmp_path} (2 file(s))" in run_log_lines(state)
    assert sorted(path.name.split("_")[1] for path in tmp_path.glob("*.prom")) == ["backup", "last-backup"]


@pytest.mark.usefixtures("prefect_harness")
def test_nothing_configured_publishes_nothing_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow, get_run_logger

    from tasks.metrics import report_metrics

    monkeypatch.delenv("REDIS_DR_PUSHGATEWAY", raising=False)
    monkeypatch.delenv("REDIS_DR_TEXTFILE_DIR", raising=False)

    @flow(name="sink-probe")
    def probe() -> None:
        report_metrics(None, [run("sessions", True, FIRST)], get_run_logger())

    lines = run_log_lines(probe(return_state=True))
    assert any(line.startswith("Finished in state Completed") for line in lines), lines
    assert not [line for line in lines if "metrics" in line]
