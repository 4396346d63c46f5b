"""Run one restore test: load the backup into a throwaway Redis, check it, remove the throwaway.

The backup streams from storage into the throwaway's private directory (every
byte checked against the manifest on the way, keys sampled from its RDB as it
passes), the server loads it, and then: the load's counts and each database's
keys and expiries against the manifest, the sampled keys' types and expiries,
their values read back, the key count against the live server's, and the data
check. The throwaway listens only on a unix socket in a 0700 directory, with
no password, so that its URL can be handed to the data check without a secret;
it is stopped and its directory removed on every way out, and the kernel kills
it should this process die first.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from redis_dr.errors import IntegrityError, RedisDRError, UnsupportedError
from redis_dr.manifest import BackupKind, StoredFile
from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.info import read_server_facts
from redis_dr.redis.rdb_scan import RdbCounter
from redis_dr.restore.file_restore import sample_of, sampled_file
from redis_dr.restore.source import BackupSource
from redis_dr.restore.throwaway import LoadReport, Throwaway, load_throwaway, load_throwaway_aof
from redis_dr.restore.verify import KeySample, VerifyReport, check_load, check_sampled_keys, expected_keyspace
from redis_dr.restore_test.checks import (
    check_against_source,
    check_expiry_accounting,
    check_values_readable,
    total_keys,
)
from redis_dr.restore_test.container import container_throwaway
from redis_dr.restore_test.data_check import DataCheckResult, run_command_check, run_entry_point_check
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.storage.location import redact_url


class RestoreTestReport(BaseModel):
    """What one restore test found."""

    instance: str
    backup_id: str
    backup_created: datetime
    location: str  # redacted
    throwaway: str  # what ran the backup, e.g. "redis-server 7.0.15 (local process)"
    verification: VerifyReport = Field(default_factory=VerifyReport)
    data_check: DataCheckResult | None = None
    keys_restored: int = 0
    source_keys: int | None = None
    phases: dict[str, float] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No finding failed and the data check (if any) passed."""
        return not self.verification.failures and (self.data_check is None or self.data_check.passed)

    def summary(self) -> str:
        """One line: passed, or what did not match."""
        problems = [f"{finding.name}: {finding.detail}" for finding in self.verification.failures]
        if self.data_check is not None and not self.data_check.passed:
            status = self.data_check.exit_status
            said = f" ({self.data_check.last_line})" if self.data_check.last_line else ""
            exit_text = f"exit {status}" if status is not None else "failed"
            problems.append(f"data check {exit_text}{said}")
        if not problems:
            return (
                f"restore test of {self.instance} backup {self.backup_id} passed ({self.keys_restored} keys)"
            )
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"restore test of {self.instance} backup {self.backup_id} failed: {problems[0]}{more}"


class RestoreTestFailed(IntegrityError):
    """The backup did not restore as its manifest says; carries the report."""

    def __init__(self, report: RestoreTestReport) -> None:
        super().__init__(report.summary())
        self.report = report


def run_restore_test(
    request: RestoreTestRequest,
    opened: BackupSource,
    identities: list[object],
    source: RedisEndpoint | None,
    *,
    why_not: str | None = None,
) -> RestoreTestReport:
    """Restore `opened` into a throwaway Redis and check it (see the module docstring); `source` is the
    live server to compare with (`why_not`: why there is none, for the report)."""
    manifest = opened.manifest
    report = RestoreTestReport(
        instance=request.instance,
        backup_id=manifest.id,
        backup_created=manifest.created_at,
        location=redact_url(opened.location),
        throwaway="",
    )
    started = time.monotonic()
    with _loaded(opened, identities, request) as (socket_path, load, sample):
        report.phases["fetch and load"] = time.monotonic() - started
        where = f"container of {request.image}" if request.image else "local process"
        report.throwaway = f"redis-server {load.redis_version} ({where})"
        url = f"unix://{socket_path}"
        with _timed(report.phases, "verify"):
            _verify(report, request, opened, RedisEndpoint.from_url(url, env={}), sample, source, why_not)
        with _timed(report.phases, "data check"):
            report.data_check = _data_check(request, url)
    return report


def _verify(
    report: RestoreTestReport,
    request: RestoreTestRequest,
    opened: BackupSource,
    endpoint: RedisEndpoint,
    sample: KeySample,
    source: RedisEndpoint | None,
    why_not: str | None,
) -> None:
    manifest, findings = opened.manifest, report.verification
    client = open_client(endpoint)
    try:
        facts = read_server_facts(client)
    finally:
        client.close()
    check_load(findings, manifest, facts)
    if manifest.source.rdb_keyspace is not None and manifest.kind is not BackupKind.AOF:
        check_expiry_accounting(findings, expected_keyspace(manifest), facts.keyspace)
    check_sampled_keys(findings, endpoint, sample)
    check_values_readable(findings, endpoint, sample)
    report.keys_restored = total_keys(facts.keyspace)
    report.source_keys, unanswered = _source_keys(source)
    check_against_source(
        findings, report.keys_restored, report.source_keys, request.dbsize_tolerance, unanswered or why_not
    )


def _source_keys(source: RedisEndpoint | None) -> tuple[int | None, str | None]:
    """The live server's key count now, or why it is not known (it does not answer)."""
    if source is None:
        return None, None
    try:
        client = open_client(source)
        try:
            return total_keys(read_server_facts(client).keyspace), None
        finally:
            client.close()
    except RedisDRError as exc:
        return None, f"the live server did not answer: {exc}"


def _data_check(request: RestoreTestRequest, url: str) -> DataCheckResult | None:
    if request.check is not None:
        return run_command_check(
            request.check, url, timeout=request.check_timeout_seconds, passthrough=request.check_env
        )
    if request.check_entry_point is not None:
        return run_entry_point_check(request.check_entry_point, url, timeout=request.check_timeout_seconds)
    return None


@contextlib.contextmanager
def _loaded(
    opened: BackupSource, identities: list[object], request: RestoreTestRequest
) -> Iterator[tuple[Path, LoadReport, KeySample]]:
    """A throwaway server (unix socket only) loaded with the backup: its socket, the load's report,
    and the keys sampled on the way."""
    manifest = opened.manifest
    sampled, sample = sampled_file(manifest)
    counter = RdbCounter(sample=request.sample, size=sampled.raw_size) if sampled is not None else None

    def chunks(stored: StoredFile) -> Iterator[bytes]:
        data = opened.read(stored, identities)
        return counter.tap(data) if counter is not None and stored == sampled else data

    loading: contextlib.AbstractContextManager[tuple[Path, LoadReport]]
    if manifest.kind is BackupKind.RDB and len(manifest.files) == 1 and request.image is not None:
        loading = container_throwaway(request.image, chunks(manifest.files[0]))
    elif manifest.kind is BackupKind.AOF and request.image is not None:
        raise UnsupportedError(
            f"backup {manifest.id} is an AOF backup: it is restore-tested in a local process, not a container"
        )
    elif manifest.kind is BackupKind.AOF:
        files = ((stored.original_name or stored.name, chunks(stored)) for stored in manifest.files)
        loading = _local(load_throwaway_aof(files, socket_only=True))
    elif manifest.kind is BackupKind.RDB and len(manifest.files) == 1:
        loading = _local(load_throwaway(chunks(manifest.files[0]), socket_only=True))
    else:
        raise UnsupportedError(
            f"backup {manifest.id} is a {manifest.kind.value}: it cannot be restore-tested"
        )
    with loading as (socket_path, load):
        if counter is not None:
            sample = sample_of(counter, sampled, sample)
        yield socket_path, load, sample


@contextlib.contextmanager
def _local(loading: contextlib.AbstractContextManager[Throwaway]) -> Iterator[tuple[Path, LoadReport]]:
    """A local throwaway's socket and load report."""
    with loading as throwaway:
        yield throwaway.socket_path, throwaway.load


@contextlib.contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds the block took to `phases[name]`."""
    started = time.monotonic()
    try:
        yield
    finally:
        phases[name] = time.monotonic() - started
