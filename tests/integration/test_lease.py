"""One operation per instance: runs of one instance wait for each other, and say for whom."""

import threading
from collections.abc import Iterator

import pytest
from prefect import flow
from prefect.context import FlowRunContext

import flows.lease
from flows.lease import InstanceBusyError, instance_lease

pytestmark = pytest.mark.integration


@flow(name="lease-holder", flow_run_name="holder-of-sessions")
def hold(holding: threading.Event, release: threading.Event) -> None:
    """Take the lease of qa/sessions and keep it until told."""
    with instance_lease("qa", "sessions"):
        holding.set()
        release.wait(timeout=60)


@flow(name="lease-taker")
def take(environment: str, instance: str) -> str:
    """Take an instance's lease and return this run's name."""
    with instance_lease(environment, instance):
        context = FlowRunContext.get()
        assert context is not None and context.flow_run is not None
        return context.flow_run.name


@pytest.fixture(autouse=True)
def server_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are of the Prefect server's leases (the other tests use this host's)."""
    monkeypatch.setenv("REDIS_DR_LEASE", "server")


@pytest.fixture
def held_lease(prefect_harness: None) -> Iterator[threading.Event]:
    """qa/sessions held by a running flow run in another thread until the test ends."""
    holding, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=hold, args=(holding, release))
    thread.start()
    assert holding.wait(timeout=60), "the holder never took the lease"
    try:
        yield release
    finally:
        release.set()
        thread.join(timeout=60)


def test_a_run_that_cannot_get_the_lease_names_the_run_that_holds_it(
    held_lease: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flows.lease, "LEASE_WAIT_SECONDS", 1.0)
    with pytest.raises(InstanceBusyError) as caught:
        take("qa", "sessions")
    message = str(caught.value)
    assert message.startswith("instance sessions (qa) is busy: running now: 'holder-of-sessions' (")
    assert message.endswith("waited 1 s for it, nothing was done")


def test_another_instance_is_not_held_up_and_a_released_lease_is_taken(held_lease: threading.Event) -> None:
    assert take("qa", "cache")  # another instance: its own lease
    assert take("staging", "sessions")  # the same name in another environment: its own lease
    held_lease.set()  # the holder ends: its lease is free again
    assert take("qa", "sessions")
