"""Tasks of the restore flow: one side effect each; only the ones safe to repeat are retried.

Stopping the target, swapping files and starting it again is one task with no
retries: it rolls back by itself on any failure, and repeating it blindly
could stop a target that had just come back.
"""

import dataclasses
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from prefect import task

from redis_dr.backup import commit_backup, store_snapshot
from redis_dr.catalog import Catalog
from redis_dr.config import BackupRequest
from redis_dr.errors import IntegrityError, RedisDRError, UnsupportedError
from redis_dr.manifest import BackupKind, Manifest
from redis_dr.platforms.base import DataLayout
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.redis.info import ServerFacts
from redis_dr.redis.snapshot_settings import fast_snapshot
from redis_dr.restore import file_restore
from redis_dr.restore.phases import PhaseClock
from redis_dr.restore.placement import Placement
from redis_dr.restore.plan import RestorePlan
from redis_dr.restore.replay import ReplayOptions, ReplayResult, replay_keys
from redis_dr.restore.request import RestoreRequest
from redis_dr.restore.source import PRE_RESTORE_LABEL, BackupSource, SourceRef
from redis_dr.restore.throwaway import Throwaway, load_throwaway, load_throwaway_aof
from redis_dr.restore.verify import (
    KeySample,
    VerifyReport,
    check_load,
    check_marker,
    check_persistence,
    check_replay,
    check_replayed_samples,
    check_sampled_keys,
)
from redis_dr.storage import open_storage
from tasks.policy import MARGIN_SECONDS, RETRY_POLICY, STREAM_SECONDS, storage_timeout
from tasks.restore_access import find_backup, identities, plan_restore, target_endpoint, target_platform

#: Keys per database compared with the throwaway server after a replay.
SAMPLE_KEYS = 20


class VerificationError(IntegrityError):
    """The restored server does not hold what the backup holds; carries the report."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclasses.dataclass
class FileRestoreResult:
    """What the swap task did: phase times and the verification report."""

    phases: dict[str, float]
    report: VerifyReport
    #: Names of the target's previous files, now under the restore's aside directory.
    moved_aside: list[str]


@task(name="choose-backup", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def choose_backup_task(request: RestoreRequest) -> SourceRef:
    """Find the backup (reading a runbook file through once to describe it)."""
    return find_backup(request)


@task(name="preflight", timeout_seconds=storage_timeout(1) + 4 * MARGIN_SECONDS, **RETRY_POLICY)
def preflight(request: RestoreRequest, source: SourceRef, tag: str) -> tuple[RestorePlan, Placement | None]:
    """Read the target's facts (changing nothing) and write the plan."""
    return plan_restore(request, source, tag)


@task(name="checkpoint", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def checkpoint(request: RestoreRequest, tag: str) -> Manifest:
    """Back up the target's current data to the first location, labelled pre-restore."""
    platform = target_platform(request)
    endpoint = target_endpoint(request, platform)
    if endpoint is None:
        raise RedisDRError("the target's address is not known: give redis_url")
    backup_request = BackupRequest(
        instance=request.instance,
        # Recorded and shown only (the endpoint below is what connects): no password in it.
        redis_url=dataclasses.replace(endpoint, password=None).redacted(),
        storage=[request.storage[0]],
        environment=request.environment,
        labels={PRE_RESTORE_LABEL: tag},
    )
    storage = open_storage(request.storage[0])
    catalog = Catalog(storage, request.instance)
    reservation = catalog.reserve(datetime.now(UTC))
    try:
        with fast_snapshot(endpoint):  # no 5 s diskless delay, no server-side LZF: someone waits
            snapshot = store_snapshot(backup_request, endpoint, storage, reservation)
        return commit_backup(backup_request, storage, snapshot)
    except BaseException:
        catalog.discard_uncommitted(reservation, release=True)
        raise
    finally:
        storage.close()


@task(name="stage-backup", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def stage_backup(
    request: RestoreRequest, source: SourceRef, placement: Placement, tag: str
) -> KeySample:
    """Write the backup into the target's data directory (staging), every byte checked; return
    the keys sampled from the backup's RDB on the way."""
    platform = target_platform(request)
    assert platform is not None
    opened = source.open()
    try:
        return file_restore.stage(platform, opened, placement, tag, identities(request))
    finally:
        opened.close()


@task(name="discard-staging", timeout_seconds=MARGIN_SECONDS * 2, **RETRY_POLICY)
def discard_staging(request: RestoreRequest, tag: str) -> None:
    """Remove what a restore staged and did not place (never the target's own files)."""
    platform = target_platform(request)
    if platform is not None:
        platform.discard_staging(tag)


@task(name="swap-and-start", timeout_seconds=file_restore.LOAD_TIMEOUT + 4 * MARGIN_SECONDS)
def swap_and_start(
    request: RestoreRequest,
    source: SourceRef,
    placement: Placement,
    tag: str,
    sample: KeySample | None = None,
) -> FileRestoreResult:
    """Stop the target, swap the staged files in, start it, verify (with the keys `stage_backup`
    sampled); roll back on any failure."""
    platform = target_platform(request)
    assert platform is not None
    endpoint = target_endpoint(request, platform)
    if endpoint is None:
        raise RedisDRError(f"cannot tell how to reach {request.target}: give redis_url")
    clock = PhaseClock()
    report = VerifyReport()
    layout = platform.layout()

    def check(facts: ServerFacts) -> None:
        verify(report, source.manifest, facts, endpoint, tag, layout, sample)
        if report.failures:
            raise VerificationError(report)

    try:
        swap = file_restore.swap_and_start(
            platform, placement, tag, endpoint, check=check, on_phase=clock.enter
        )
    finally:
        clock.enter(None)
    return FileRestoreResult(phases=clock.seconds, report=report, moved_aside=swap.moved_aside)


def verify(
    report: VerifyReport,
    manifest: Manifest,
    facts: ServerFacts,
    endpoint: RedisEndpoint,
    tag: str,
    layout: DataLayout,
    sample: KeySample | None = None,
) -> None:
    """Every check after a load: counts, persistence, a test write, the keys sampled while staging."""
    check_load(report, manifest, facts)
    check_persistence(report, facts, layout)
    check_marker(report, endpoint, tag)
    check_sampled_keys(report, endpoint, sample or KeySample(missing="no keys were sampled while staging"))


@dataclasses.dataclass
class ReplayRestoreResult:
    """What the replay task did: phase times, the replay's counts and the verification report."""

    phases: dict[str, float]
    result: ReplayResult
    report: VerifyReport


def _throwaway_of(opened: BackupSource, request: RestoreRequest) -> AbstractContextManager[Throwaway]:
    """A throwaway server loaded with the backup: its RDB, or its AOF files (appendonly on)."""
    manifest, keys = opened.manifest, identities(request)
    if manifest.kind is BackupKind.AOF:
        return load_throwaway_aof(
            (stored.original_name or stored.name, opened.read(stored, keys)) for stored in manifest.files
        )
    if manifest.kind is not BackupKind.RDB or len(manifest.files) != 1:
        raise UnsupportedError(f"backup {manifest.id} is a {manifest.kind.value}: it cannot be replayed")
    return load_throwaway(opened.read(manifest.files[0], keys))


@task(name="replay-keys", timeout_seconds=STREAM_SECONDS, **RETRY_POLICY)
def replay_into_target(request: RestoreRequest, source: SourceRef, tag: str) -> ReplayRestoreResult:
    """Load the backup into a throwaway server, write its keys into the live target, verify.

    Safe to retry: keys are written with REPLACE (or kept), so a second attempt ends the same.
    """
    endpoint = target_endpoint(request, target_platform(request))
    if endpoint is None:
        raise RedisDRError("cannot tell how to reach the target: give redis_url")
    manifest = source.manifest
    clock = PhaseClock()
    report = VerifyReport()
    options = ReplayOptions(
        db=request.db,
        match=request.match,
        flush=request.flush,
        keep_existing=request.keep_existing,
        backup_rdb_version=manifest.source.rdb_version,
    )
    opened = source.open()
    try:
        clock.enter("load")
        with _throwaway_of(opened, request) as throwaway:
            clock.enter("replay")
            result = replay_keys(throwaway.client(), endpoint, options)
            clock.enter("verify")
            whole = request.db is None and request.match is None
            check_replay(report, manifest, throwaway.load, result, whole=whole)
            check_replayed_samples(
                report, throwaway.client, endpoint, sorted(result.databases),
                match=request.match, count=SAMPLE_KEYS, keep_existing=request.keep_existing,
            )  # fmt: skip
            check_marker(report, endpoint, tag)
    finally:
        clock.enter(None)
        opened.close()
    if report.failures:
        raise VerificationError(report)
    return ReplayRestoreResult(phases=clock.seconds, result=result, report=report)
