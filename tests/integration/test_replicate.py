"""Replication between real locations: two S3 services, S3 and GCS, a destination killed mid-copy.

The source holds three real backups of a redis-server, dated (consistently: id,
created_at) in the past so that lags and policies are exact: A (January), B and
C (the same March day, 3h10m apart); C holds ~20 MiB of random values, so it
streams in several parts and a destination can be killed while it does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from prefect.artifacts import Artifact
from prefect.client.schemas.objects import State

from flows.replicate import replicate
from redis_dr.backup import commit_backup, store_snapshot
from redis_dr.catalog import Catalog
from redis_dr.config import build_request
from redis_dr.copy import copy_backup
from redis_dr.errors import IntegrityError, RedisDRError, TransientError
from redis_dr.fetch import fetch_to_file
from redis_dr.manifest import Manifest, backup_id_for
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.replicate import ReplicateRequest, ReplicateResult
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage
from tests.fixtures.redis_servers import TEST_SERVER_CONFIG
from tests.fixtures.storage_servers import TEST_BUCKET
from tests.integration.cli import assert_one_clear_error, run_cli
from tests.servers.fakegcs import FakeGCS
from tests.servers.seaweedfs import SeaweedFS

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

INSTANCE = "sessions"
REPLICA_BUCKET = "redis-dr-replica"
A_TIME = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
B_TIME = datetime(2026, 3, 28, 8, 50, tzinfo=UTC)
C_TIME = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
BIG_VALUES = 20  # of 1 MiB each, random: C is ~20 MiB stored


@dataclass(frozen=True)
class Source:
    """The module's source location and its backups, oldest first."""

    url: str
    a: Manifest
    b: Manifest
    c: Manifest

    @property
    def ids(self) -> list[str]:
        return [self.a.id, self.b.id, self.c.id]


def take_backup(server: RedisServer, url: str, at: datetime) -> Manifest:
    """A real backup of `server` into `url`, dated `at` (its id and created_at agree)."""
    request = build_request(instance=INSTANCE, redis_url=server.url, storage=url)
    storage = open_storage(url)
    try:
        reservation = Catalog(storage, INSTANCE).reserve(at)
        assert reservation.backup_id == backup_id_for(at)
        snapshot = store_snapshot(request, RedisEndpoint.from_url(server.url, env={}), storage, reservation)
        took = timedelta(seconds=snapshot.duration_seconds)
        dated = snapshot.model_copy(update={"started_at": at, "completed_at": at + took})
        return commit_backup(request, storage, dated)
    finally:
        storage.close()


def prefix_of(url: str) -> str:
    """The unique prefix of a test location's URL."""
    return url.split("?")[0].rstrip("/").rsplit("/", 1)[1]


def s3_url(server: SeaweedFS, bucket: str = TEST_BUCKET) -> str:
    return f"s3://{bucket}/{uuid.uuid4().hex}?endpoint={server.endpoint}&region=us-east-1&part_size=5MiB"


def gs_url(server: FakeGCS) -> str:
    return f"gs://{TEST_BUCKET}/{uuid.uuid4().hex}?endpoint={server.endpoint}&part_size=4MiB"


@pytest.fixture(scope="module")
def source(seaweedfs: SeaweedFS) -> Iterator[Source]:
    """Three real backups in a fresh S3 location of the session's SeaweedFS."""
    seaweedfs.create_bucket(REPLICA_BUCKET)
    server = RedisServer(dict(TEST_SERVER_CONFIG)).start()
    try:
        client = server.client()
        client.set("session:1", "alice", ex=3600)
        url = s3_url(seaweedfs)
        a = take_backup(server, url, A_TIME)
        client.set("session:2", "bob")
        b = take_backup(server, url, B_TIME)
        for number in range(BIG_VALUES):
            client.set(f"blob:{number}", os.urandom(1 << 20))
        c = take_backup(server, url, C_TIME)
    finally:
        server.stop()
    assert c.stored_size > BIG_VALUES << 20
    yield Source(url, a, b, c)


def run(source: Source, *destinations: object, **fields: object) -> State[Any]:
    """Run the replicate flow in this process; its final state."""
    request = ReplicateRequest.model_validate(
        {"instance": INSTANCE, "source": source.url, "destinations": list(destinations), **fields}
    )
    return replicate(request, return_state=True)


def result_of(state: State[Any]) -> ReplicateResult:
    assert state.is_completed(), state.message
    result: ReplicateResult = state.result()
    return result


def error_of(state: State[Any]) -> RedisDRError:
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, RedisDRError), error
    return error


def assert_complete_verified_copies(url: str, expected: list[Manifest], tmp_path: Path) -> None:
    """The destination lists exactly `expected`, and each reads back verified, as `fetch` would."""
    storage = open_storage(url)
    try:
        listing = Catalog(storage, INSTANCE).list()
        assert listing.unreadable == []
        assert [m.id for m in listing.manifests] == sorted((m.id for m in expected), reverse=True)
        for manifest in listing.manifests:
            assert manifest in expected  # the source's manifest, byte for byte as a model
            output = fetch_to_file(storage, manifest, tmp_path / f"{uuid.uuid4().hex}.rdb", [])
            data = output.read_bytes()
            assert data.startswith(b"REDIS")
            assert hashlib.sha256(data).hexdigest() == manifest.files[0].raw_sha256
            output.unlink()
    finally:
        storage.close()


# -- happy path ---------------------------------------------------------------------------


def test_the_command_copies_to_a_second_bucket_and_to_gcs_and_a_rerun_copies_nothing(
    source: Source,
    seaweedfs: SeaweedFS,
    fake_gcs: FakeGCS,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    second_bucket, gcs = s3_url(seaweedfs, REPLICA_BUCKET), gs_url(fake_gcs)

    code, out, err = run_cli(
        capsys, "replicate", "--storage", source.url, "--to", second_bucket, "--to", gcs,
        "--instance", INSTANCE, "--max-lag", "1h", "--parallel", "3", "--json",
    )  # fmt: skip

    assert code == 0, err
    result = ReplicateResult.model_validate_json(out)
    stored = sum(m.stored_size for m in (source.a, source.b, source.c))
    for destination in result.destinations:
        assert destination.copied == source.ids and destination.failed == []
        assert destination.bytes == stored
        assert destination.lag_after_seconds == 0
        # An empty destination lagged by everything the source holds: the age of its oldest backup.
        assert destination.lag_before_seconds is not None
        assert destination.lag_before_seconds >= (datetime.now(UTC) - A_TIME).total_seconds() - 600
    assert result.problems == []
    for url in (second_bucket, gcs):
        assert_complete_verified_copies(url, [source.a, source.b, source.c], tmp_path)

    code, out, err = run_cli(capsys, "replicate", "--storage", source.url, "--to", second_bucket, "--to", gcs,
                             "--instance", INSTANCE)  # fmt: skip

    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "copied 0 backup(s), 0 B; 0 already present; 0 failed; lag 0s" in line, line


# -- a destination that dies mid-copy --------------------------------------------------------


class Killable(Protocol):
    @property
    def endpoint(self) -> str: ...
    @property
    def pid(self) -> int: ...
    def kill(self) -> None: ...
    def restart(self) -> None: ...
    def stop(self) -> None: ...


class KilledBySignal:
    """The pid and a SIGKILL of a server class whose process is `_process`."""

    _process: subprocess.Popen[bytes] | None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def kill(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()
        self._process = None


class KillableSeaweedFS(KilledBySignal, SeaweedFS):
    """A SeaweedFS that can be killed (SIGKILL) and started again on the same ports and data."""

    #: An object read back after a restart: until it reads, the volume server has not rejoined
    #: (S3 answers InternalError for stored data although ListBuckets already works).
    PROBE = "restart-probe"

    def __init__(self, like: SeaweedFS) -> None:
        super().__init__()
        self.access_key, self.secret_key = like.access_key, like.secret_key  # the same AWS_* keys

    def start(self, timeout: float = 60.0) -> KillableSeaweedFS:
        super().start(timeout)
        self.create_bucket(REPLICA_BUCKET)
        self.client().put_object(Bucket=REPLICA_BUCKET, Key=self.PROBE, Body=b"stored before the kill")
        return self

    def stop(self) -> None:
        """Killed first: its graceful stop would wait 2 s for nothing (the data is thrown away)."""
        if self._process is not None:
            self.kill()
        super().stop()

    def restart(self) -> None:
        assert self.data_dir is not None and self._process is None
        for port in self.ports.values():  # what the killed process left (stop() removes them too)
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-grpc-{port}.sock"):
                sock.unlink(missing_ok=True)
        command = self._command(self.data_dir / "data", self.data_dir / "s3.json")
        with (self.data_dir / "weed.log").open("ab") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, cwd=self.data_dir)  # fmt: skip
        self._wait_ready(60)
        self._wait_until_data_reads(60)

    def _wait_until_data_reads(self, timeout: float) -> None:
        client, deadline = self.client(), time.monotonic() + timeout
        while True:
            try:
                client.get_object(Bucket=REPLICA_BUCKET, Key=self.PROBE)["Body"].read()
                return
            except client.exceptions.ClientError:
                assert time.monotonic() < deadline, (
                    f"SeaweedFS serves no stored data {timeout:.0f} s after a restart"
                )
                time.sleep(0.1)


class KillableFakeGCS(KilledBySignal, FakeGCS):
    """A fake-gcs-server keeping its objects on disk, so that it can be killed and started again."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def _command(self) -> list[str]:
        command = super()._command()
        command[command.index("memory")] = "filesystem"
        return [*command, "-filesystem-root", str(self.root)]

    def restart(self) -> None:
        self.stop()  # only its log is left to remove
        self.start()


def bytes_read(pid: int) -> int:
    """Bytes process `pid` has read (files and sockets alike), from /proc/<pid>/io."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError(f"no rchar in /proc/{pid}/io")


@contextlib.contextmanager
def killed_once_it_has_read(server: Killable, at_least: int) -> Iterator[threading.Event]:
    """Kill `server` as soon as it has read `at_least` more bytes than now; the event says it was."""
    pid, killed, done = server.pid, threading.Event(), threading.Event()
    baseline = bytes_read(pid)

    def watch() -> None:
        while not done.is_set():
            if bytes_read(pid) - baseline >= at_least:
                server.kill()
                killed.set()
                return
            done.wait(0.005)  # a poll of an observed quantity, not a wait for time to pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield killed
    finally:
        done.set()
        watcher.join(timeout=30)


@pytest.fixture(params=["s3", "gcs"])
def dying(
    request: pytest.FixtureRequest, seaweedfs: SeaweedFS, tmp_path: Path
) -> Iterator[tuple[Killable, str]]:
    """A destination on a server of its own that the test kills mid-copy; its URL."""
    server: Killable
    if request.param == "s3":
        weed = KillableSeaweedFS(seaweedfs)
        weed.start()
        server, url = weed, s3_url(weed, REPLICA_BUCKET)
    else:
        gcs = KillableFakeGCS(tmp_path / "gcs")
        gcs.start()
        gcs.create_bucket(TEST_BUCKET)
        server, url = gcs, gs_url(gcs)
    try:
        yield server, url
    finally:
        server.stop()


def test_a_destination_killed_mid_copy_is_completed_by_the_next_run_and_nothing_half_copied_is_listed(
    source: Source,
    dying: tuple[Killable, str],
    seaweedfs: SeaweedFS,
    fake_gcs: FakeGCS,
    tmp_path: Path,
) -> None:
    server, dying_url = dying
    # The other destination is the other kind: S3 -> (dying S3 + GCS), or S3 -> (dying GCS + second bucket).
    healthy_url = gs_url(fake_gcs) if dying_url.startswith("s3://") else s3_url(seaweedfs, REPLICA_BUCKET)
    everything = [source.a, source.b, source.c]

    with killed_once_it_has_read(server, at_least=8 << 20) as killed:  # C is streaming: ~20 MiB
        state = run(source, dying_url, healthy_url, parallel=2)

    assert killed.is_set(), "the destination was not killed during the copy"
    error = error_of(state)
    assert isinstance(error, TransientError), error  # the destination did not answer: worth a rerun
    assert f"copy of {source.c.id} failed" in str(error) and prefix_of(dying_url) in str(error)
    assert prefix_of(healthy_url) not in str(error)
    assert_complete_verified_copies(healthy_url, everything, tmp_path)  # the other destination went on

    server.restart()
    # Back up: only complete backups are listed there; the one cut off mid-stream is not.
    storage = open_storage(dying_url)
    try:
        listed, stored_ids = Catalog(storage, INSTANCE).list(), Catalog(storage, INSTANCE).backup_ids()
    finally:
        storage.close()
    assert source.c.id in stored_ids  # what the cut-off copy left there (its claim on the id)...
    assert source.c.id not in [m.id for m in listed.manifests]  # ...is no backup
    assert_complete_verified_copies(dying_url, [m for m in everything if m in listed.manifests], tmp_path)

    result = result_of(run(source, dying_url, healthy_url, parallel=2))

    finished = result.destinations[0]
    assert source.c.id in finished.copied and finished.failed == []
    assert finished.lag_after_seconds == 0
    assert_complete_verified_copies(dying_url, everything, tmp_path)

    again = result_of(run(source, dying_url, healthy_url, parallel=2))

    for destination in again.destinations:
        assert (destination.missing, destination.copied, destination.bytes) == (0, [], 0)


# -- policy, lag, unreadable manifests ----------------------------------------------------------


def test_a_destination_with_a_policy_receives_only_what_it_would_keep(
    source: Source, seaweedfs: SeaweedFS, fake_gcs: FakeGCS, tmp_path: Path
) -> None:
    """Two monthlies: C (March's newest) and A (January: February has none); never B."""
    monthlies, everything = gs_url(fake_gcs), s3_url(seaweedfs, REPLICA_BUCKET)

    result = result_of(run(source, {"url": monthlies, "policy": {"keep_monthly": 2}}, everything))

    kept, full = result.destinations
    assert (kept.missing, kept.planned, kept.copied) == (3, 2, [source.a.id, source.c.id])
    assert kept.policy is not None and "monthly 2" in kept.policy
    assert full.copied == source.ids
    assert_complete_verified_copies(monthlies, [source.a, source.c], tmp_path)

    again = result_of(run(source, {"url": monthlies, "policy": {"keep_monthly": 2}}))

    assert (again.destinations[0].missing, again.destinations[0].planned) == (1, 0)  # B: still not kept there
    table = str(getattr(Artifact.get(f"replicate-{INSTANCE}"), "data", ""))
    assert "| 1 (1 not kept by its policy) | 0 |" in table


def test_a_destination_still_lagging_beyond_max_lag_fails_the_command(
    source: Source, seaweedfs: SeaweedFS, capsys: pytest.CaptureFixture[str]
) -> None:
    """C's id is reserved there by another run (each region backs up there too): C cannot arrive."""
    url = s3_url(seaweedfs, REPLICA_BUCKET)
    storage, origin = open_storage(url), open_storage(source.url)
    try:
        copy_backup(origin, storage, INSTANCE, source.a.id)
        theirs = Catalog(storage, INSTANCE)
        storage.put_bytes(theirs.reservation_key(source.c.id), b'{"backup_id": "another run"}')
    finally:
        storage.close()
        origin.close()

    code, out, err = run_cli(capsys, "replicate", "--storage", source.url, "--to", url, "--instance", INSTANCE,
                             "--max-lag", "2h")  # fmt: skip

    assert code != 0 and out == ""
    line = assert_one_clear_error(err, f"copy of {source.c.id} failed", "not copying into it",
                                  "lags 3h10m behind the source (limit 2h)")  # fmt: skip
    assert "s3://" in line
    assert "lag 3h10m (was 77d)" in err  # the flow's line for the destination: A was there, B arrived


def test_an_unreadable_source_manifest_is_reported_and_fails_the_run_after_the_others_are_copied(
    source: Source, seaweedfs: SeaweedFS, fake_gcs: FakeGCS, tmp_path: Path
) -> None:
    broken_source = Source(s3_url(seaweedfs), source.a, source.b, source.c)
    origin, storage = open_storage(source.url), open_storage(broken_source.url)
    try:
        for manifest in (source.a, source.b):
            copy_backup(origin, storage, INSTANCE, manifest.id)
        storage.put_bytes(Catalog(storage, INSTANCE).manifest_key(source.c.id), b"{not json")
    finally:
        origin.close()
        storage.close()
    destination, damaged = gs_url(fake_gcs), gs_url(fake_gcs)
    storage = open_storage(damaged)  # a manifest there that cannot be read, under an id to copy
    try:
        storage.put_bytes(Catalog(storage, INSTANCE).manifest_key(source.b.id), b"\x00 damaged")
    finally:
        storage.close()

    state = run(broken_source, destination, damaged)

    error = error_of(state)
    assert isinstance(error, IntegrityError)
    assert "unreadable manifest" in str(error) and prefix_of(broken_source.url) in str(error)
    assert f"/{INSTANCE}/{source.c.id}/manifest.json" in str(error)
    assert f"copy of {source.b.id} failed" in str(error) and "different manifest" in str(error)
    assert_complete_verified_copies(destination, [source.a, source.b], tmp_path)
    table = str(getattr(Artifact.get(f"replicate-{INSTANCE}"), "data", ""))
    assert "## Unreadable at a destination" in table and prefix_of(damaged) in table
