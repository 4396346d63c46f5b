"""Validating one backup: every byte read back through the same path a restore takes.

1. Each stored object is stat'ed: a missing or wrongly sized one is named at once.
2. The objects are read (redis_dr/fetch.py `read_file`): stored size and sha256,
   age decryption, decompression, original size and sha256.
3. An RDB streams on into redis-check-rdb (its stdin: nothing is written to disk)
   and through RdbCounter, whose key counts are compared with the manifest's.
   An AOF backup's files are written to a private temporary directory (0700),
   laid out as the server had them, for redis-check-aof; it is removed afterwards.

When reading fails, the stored object is read once more to say whether its bytes
differ from the manifest's sha256 (the object is corrupt) or match it (the
backup was stored that way). Integrity problems are returned in the BackupCheck;
what stops the check itself (no age key, a full disk, a location that does not
answer) is raised.
"""

from __future__ import annotations

import errno
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from redis_dr.aof import AofFileType, parse_aof_manifest
from redis_dr.catalog import Catalog
from redis_dr.config import AGE_IDENTITY_ENV
from redis_dr.errors import ConfigError, IntegrityError, NotFoundError, StorageFullError
from redis_dr.fetch import read_file
from redis_dr.manifest import BackupKind, Manifest, StoredFile
from redis_dr.pipeline import Compression, Tally
from redis_dr.redis.info import KeyspaceStats
from redis_dr.redis.rdb_scan import RdbCounter
from redis_dr.storage import Storage
from redis_dr.storage.location import redact_url
from redis_dr.units import human_size
from redis_dr.validate import BackupCheck
from redis_dr.validate_tools import CHECK_AOF, CHECK_RDB, RdbCheck, check_aof_dir

#: Space left free beside an AOF backup's files in the temporary directory.
FREE_SPACE_MARGIN = 64 << 20


class _Report:
    """The verdict on one backup as it is built: checks passed, problems found."""

    def __init__(self, storage: Storage, manifest: Manifest) -> None:
        self.manifest = manifest
        self.location = redact_url(storage.url)
        self.started = time.monotonic()
        self.checks: list[str] = []
        self.problems: list[str] = []
        self.bytes = 0

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.manifest.id}: {text}")

    def result(self) -> BackupCheck:
        return BackupCheck(
            backup_id=self.manifest.id,
            location=self.location,
            ok=not self.problems,
            problems=self.problems,
            checks=self.checks,
            seconds=round(time.monotonic() - self.started, 3),
            bytes=self.bytes,
            created=self.manifest.created_at,
            kind=self.manifest.kind.value,
            raw_size=self.manifest.raw_size,
        )


def check_backup(
    storage: Storage, manifest: Manifest, identities: list[Any], *, work_dir: Path | None = None
) -> BackupCheck:
    """Validate one committed backup; `identities` are age identities (for encrypted backups),
    `work_dir` holds an AOF backup's files meanwhile (default: the system temp directory)."""
    refuse_wrong_identity(manifest, identities)
    report = _Report(storage, manifest)
    if _objects_as_recorded(storage, manifest, report):
        if manifest.kind is BackupKind.AOF:
            _check_aof(storage, manifest, identities, report, work_dir)
        else:
            _check_rdb(storage, manifest, identities, report)
    return report.result()


def refuse_wrong_identity(manifest: Manifest, identities: list[Any]) -> None:
    """ConfigError, before anything is read, when an encrypted backup cannot be opened with these
    identities: none given, or none is one of its (age1...) recipients."""
    recipients = {recipient for stored in manifest.files for recipient in stored.encrypted_to}
    if not recipients:
        return
    if not identities:
        raise ConfigError(
            f"backup {manifest.id} is encrypted: set {AGE_IDENTITY_ENV} to the age identity "
            "(or the path of its key file) of one of its recipients"
        )
    # With an ssh recipient among them only decryption can tell.
    age_only = all(recipient.startswith("age1") for recipient in recipients)
    if age_only and not {str(identity.to_public()) for identity in identities} & recipients:
        raise ConfigError(
            f"backup {manifest.id} is encrypted to {', '.join(sorted(recipients))}: "
            f"{AGE_IDENTITY_ENV} holds the identity of none of them; set one of theirs"
        )


def _objects_as_recorded(storage: Storage, manifest: Manifest, report: _Report) -> bool:
    """Stat every object: False (problems recorded) if one is missing or has another size."""
    catalog = Catalog(storage, manifest.instance)
    for stored in manifest.files:
        try:
            size = storage.stat(catalog.data_key(manifest.id, stored.name)).size
        except NotFoundError:
            report.problem(f"stored object {stored.name} is missing")
            continue
        if size != stored.stored_size:
            why = "truncated" if size < stored.stored_size else "longer than recorded"
            report.problem(
                f"stored object {stored.name} has {size:,} bytes, "
                f"the manifest says {stored.stored_size:,} ({why})"
            )
    return not report.problems


def _read_passed(stored: StoredFile, report: _Report) -> None:
    """The checks reading a file through passed: sha256, and decryption and decompression if used."""
    report.bytes += stored.stored_size
    for check, used in (
        ("sha256", True),
        ("decrypt", bool(stored.encrypted_to)),
        ("decompress", stored.compression is not Compression.NONE),
    ):
        if used and check not in report.checks:
            report.checks.append(check)


def _read_problem(storage: Storage, manifest: Manifest, stored: StoredFile, exc: IntegrityError) -> str:
    """Why reading a file failed: its stored bytes differ from the manifest, or they match and
    what they hold is wrong. Reads the stored object once more, to tell."""
    reason = str(exc).split(" is corrupt: ", 1)[-1]
    tally = Tally()
    for _ in tally.tap(storage.get(Catalog(storage, manifest.instance).data_key(manifest.id, stored.name))):
        pass
    if (tally.size, tally.sha256) != (stored.stored_size, stored.stored_sha256):
        found = "" if reason.startswith("stored bytes do not match") else f": {reason}"
        return f"stored object {stored.name}: sha256 does not match the manifest (corrupt){found}"
    return f"stored object {stored.name} matches its sha256, but reading it failed: {reason}"


def _check_rdb(storage: Storage, manifest: Manifest, identities: list[Any], report: _Report) -> None:
    """Stream the RDB through the checks, redis-check-rdb and the key counter."""
    if len(manifest.files) != 1:
        report.problem(f"an RDB backup with {len(manifest.files)} files (expected one)")
        return
    stored = manifest.files[0]
    counter = RdbCounter()
    with RdbCheck() as check:
        try:
            for _ in check.tap(counter.tap(read_file(storage, manifest, stored, identities))):
                pass
        except IntegrityError as exc:
            report.problem(_read_problem(storage, manifest, stored, exc))
            return
        _read_passed(stored, report)
        verdict = check.verdict(stored.raw_size)
    if verdict.ok:
        report.checks.append(CHECK_RDB)
    else:
        report.problem(verdict.line)
    _compare_counts(counter, manifest, report)


def _compare_counts(counter: RdbCounter, manifest: Manifest, report: _Report) -> None:
    """The keys the RDB holds against the manifest's record of them."""
    if counter.trailing_bytes:
        report.problem(f"{counter.trailing_bytes:,} bytes follow the RDB's end (stale bytes?)")
    counts = counter.counts()
    if counts is None:
        report.checks.append(f"keys not counted ({counter.unknown_reason})")
        return
    counted = _keys_line(counts)
    recorded = manifest.source.rdb_keyspace
    if recorded is None:
        why = manifest.source.rdb_count_problem or "the manifest records no counts from the RDB"
        report.checks.append(f"{counted} (count could not be compared: {why})")
        return
    differences = [
        f"db{db} holds {_stats(counts.get(db))}, the manifest says {_stats(recorded.get(db))}"
        for db in sorted(set(counts) | set(recorded))
        if _pair(counts.get(db)) != _pair(recorded.get(db))
    ]
    if differences:
        report.problem("key counts differ from the manifest: " + "; ".join(differences))
    else:
        report.checks.append(counted)


def _pair(stats: KeyspaceStats | None) -> tuple[int, int]:
    return (stats.key_count, stats.expires) if stats else (0, 0)


def _stats(stats: KeyspaceStats | None) -> str:
    keys, expires = _pair(stats)
    return f"{keys:,} keys ({expires:,} with an expiry)"


def _keys_line(counts: dict[int, KeyspaceStats]) -> str:
    """'1,234 keys in 2 dbs'."""
    total = sum(stats.key_count for stats in counts.values())
    return f"{total:,} keys in {len(counts)} db{'s' if len(counts) != 1 else ''}"


def _check_aof(
    storage: Storage, manifest: Manifest, identities: list[Any], report: _Report, work_dir: Path | None
) -> None:
    """Write the AOF files, verified, into a private directory and run redis-check-aof there."""
    names = [stored.original_name for stored in manifest.files]
    manifests = [name for name in names if name and name.endswith(".manifest")]
    if None in names or len(manifests) != 1:
        report.problem("an AOF backup whose files do not name their AOF names and one .manifest")
        return
    where = work_dir or Path(tempfile.gettempdir())
    need, free = manifest.raw_size + FREE_SPACE_MARGIN, shutil.disk_usage(where).free
    if free < need:
        raise StorageFullError(
            f"validating AOF backup {manifest.id} needs {human_size(need)} in {where}, "
            f"{human_size(free)} is free: set TMPDIR to a directory with more space"
        )
    private = Path(tempfile.mkdtemp(prefix="redis-dr-validate-", dir=where))  # mode 0700
    try:
        aof_dir = private / "appendonlydir"
        aof_dir.mkdir(mode=0o700)
        for stored in manifest.files:
            assert stored.original_name is not None
            try:
                _write(read_file(storage, manifest, stored, identities), aof_dir / stored.original_name)
            except IntegrityError as exc:
                report.problem(_read_problem(storage, manifest, stored, exc))
                continue
            _read_passed(stored, report)
        if report.problems:
            return
        try:
            listed = parse_aof_manifest((aof_dir / manifests[0]).read_bytes(), where=manifests[0])
        except IntegrityError as exc:
            report.problem(str(exc))
            return
        incr = [entry.name for entry in listed if entry.type is AofFileType.INCR]
        verdict = check_aof_dir(aof_dir / manifests[0], incr[-1] if incr else None, manifest.raw_size)
        if verdict.ok:
            report.checks.append(CHECK_AOF if verdict.line.endswith("valid") else verdict.line)
        else:
            report.problem(verdict.line)
        report.checks.append("keys not compared (AOF: the incr files change what the base holds)")
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _write(chunks: Any, path: Path) -> None:
    """Write chunks to a new file; a full disk is one clear error."""
    try:
        with path.open("xb") as out:
            for chunk in chunks:
                out.write(chunk)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(
                f"no space left in {path.parent.parent.parent} while validating: "
                "set TMPDIR to a larger directory"
            ) from None
        raise
