"""Verification after a restore: is the server up, does it hold the backup, can it write and persist?

Key counts are compared with what the backup holds, with the keys Redis dropped
at load because their expiry had passed counted apart (INFO's
`rdb_last_load_keys_expired`): a session store always has some. Counts a
client may have changed since the start (per database) warn; what the load
itself reports must match exactly.

After a restore by file, keys sampled from the backup's RDB while it was staged
(`KeySample`) are looked up on the server: present (or expired since, as their
TTL said), with the same TYPE, and with an expiry exactly where the backup had
one (PEXPIRETIME equals the absolute expiry the RDB holds).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis
from pydantic import BaseModel, Field

from redis_dr.manifest import BackupKind, Manifest
from redis_dr.platforms.base import DataLayout
from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.errors import translate
from redis_dr.redis.info import KeyspaceStats, ServerFacts
from redis_dr.redis.rdb_sample import BUILTIN_TYPES, SampledKey
from redis_dr.restore.compare import EXPIRY_TOLERANCE_MS, compare_keys, describe_key, sample_keys
from redis_dr.restore.replay import ReplayResult
from redis_dr.restore.throwaway import LoadReport

MARKER_PREFIX = "redis-dr:restore-check:"
_MARKER_TTL_MS = 60_000


class Result(StrEnum):
    """One verification finding's outcome."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class Finding(BaseModel):
    """One thing verification looked at."""

    name: str
    result: Result
    detail: str


class VerifyReport(BaseModel):
    """Everything verification found, with the numbers behind it."""

    findings: list[Finding] = Field(default_factory=list)
    expected: dict[int, KeyspaceStats] = Field(default_factory=dict)
    actual: dict[int, KeyspaceStats] = Field(default_factory=dict)
    keys_loaded: int | None = None
    keys_expired_at_load: int | None = None

    @property
    def failures(self) -> list[Finding]:
        """Findings that fail the restore."""
        return [finding for finding in self.findings if finding.result is Result.FAIL]

    def add(self, name: str, result: Result, detail: str) -> None:
        """Record one finding."""
        self.findings.append(Finding(name=name, result=result, detail=detail))

    def summary(self) -> str:
        """One line naming the first failure and its numbers (for the error message)."""
        failures = self.failures
        if not failures:
            return "verified"
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return f"verification failed: {failures[0].name}: {failures[0].detail}{more}"


def expected_keyspace(manifest: Manifest) -> dict[int, KeyspaceStats]:
    """What the backup holds per database: counted in the RDB where it was, else as INFO said."""
    return dict(manifest.source.rdb_keyspace or manifest.source.keyspace)


def check_load(report: VerifyReport, manifest: Manifest, facts: ServerFacts) -> None:
    """The load's own counts against the backup: loaded + dropped as expired = what it holds."""
    expected = report.expected = expected_keyspace(manifest)
    report.actual = dict(facts.keyspace)
    report.keys_loaded = facts.rdb_last_load_keys_loaded
    report.keys_expired_at_load = facts.rdb_last_load_keys_expired
    total = sum(stats.key_count for stats in expected.values())
    exact = manifest.source.rdb_keyspace is not None
    if facts.rdb_last_load_keys_loaded is None or manifest.kind is BackupKind.AOF:
        _compare_dbs(report, expected, facts.keyspace, exact=exact and manifest.kind is not BackupKind.AOF)
        return
    loaded, dropped = facts.rdb_last_load_keys_loaded, facts.rdb_last_load_keys_expired or 0
    if loaded + dropped == total or not exact:
        result = Result.PASS if loaded + dropped == total else Result.WARN
        report.add(
            "keys loaded",
            result,
            f"{loaded} loaded + {dropped} dropped as already expired = {loaded + dropped}, "
            f"the backup holds {total}" + ("" if exact else " (as INFO said when it was taken)"),
        )
    else:
        report.add(
            "keys loaded",
            Result.FAIL,
            f"the backup holds {total} keys, the server loaded {loaded} and dropped {dropped} as "
            f"expired: {total - loaded - dropped:+d} unaccounted for",
        )
    _compare_dbs(report, expected, facts.keyspace, exact=False)


def _compare_dbs(
    report: VerifyReport,
    expected: dict[int, KeyspaceStats],
    actual: dict[int, KeyspaceStats],
    *,
    exact: bool,
) -> None:
    """Per database: keys now against the backup. Only expiring keys may be missing."""
    for db in sorted(set(expected) | set(actual)):
        want = expected.get(db, KeyspaceStats(keys=0, expires=0))
        have = actual.get(db, KeyspaceStats(keys=0, expires=0))
        detail = (
            f"db{db}: {have.key_count} keys ({have.expires} expiring), the backup has "
            f"{want.key_count} ({want.expires} expiring)"
        )
        if have.key_count == want.key_count:
            report.add(f"db{db} keys", Result.PASS, detail)
        elif want.key_count - want.expires <= have.key_count <= want.key_count:
            report.add(f"db{db} keys", Result.PASS, f"{detail}: the difference expired")
        elif exact:
            report.add(f"db{db} keys", Result.FAIL, detail)
        else:
            report.add(f"db{db} keys", Result.WARN, f"{detail}: clients may have written since")


def check_marker(report: VerifyReport, endpoint: RedisEndpoint, tag: str) -> None:
    """Write, read and delete a marker key: the server accepts writes (no MISCONF, READONLY, OOM)."""
    key = f"{MARKER_PREFIX}{tag}"
    client = open_client(endpoint)
    try:
        client.set(key, tag, px=_MARKER_TTL_MS)
        value = client.get(key)
        client.delete(key)
    except redis.ResponseError as exc:
        report.add("test write", Result.FAIL, f"the server refused a write: {exc}")
        return
    except Exception as exc:
        raise translate(exc, endpoint, "SET") from None
    finally:
        client.close()
    if value != tag.encode():
        report.add("test write", Result.FAIL, f"wrote {key} and read back {value!r}")
    else:
        report.add("test write", Result.PASS, f"{key} written, read back and deleted")


def check_persistence(report: VerifyReport, facts: ServerFacts, layout: DataLayout | None) -> None:
    """AOF on where the target's config has it on; the last save and AOF write did not fail."""
    if layout is not None and facts.aof_enabled != layout.appendonly:
        want = "on" if layout.appendonly else "off"
        report.add(
            "persistence",
            Result.FAIL,
            f"AOF is {'on' if facts.aof_enabled else 'off'}, the target's config has it {want}",
        )
        return
    problems = []
    if facts.rdb_last_bgsave_status not in ("ok", "unknown"):
        problems.append(f"last RDB save {facts.rdb_last_bgsave_status}")
    if facts.aof_enabled and facts.aof_last_write_status != "ok":
        problems.append(f"AOF write {facts.aof_last_write_status}")
    if problems:
        report.add("persistence", Result.FAIL, "; ".join(problems))
    else:
        aof = "AOF on" if facts.aof_enabled else "AOF off"
        report.add("persistence", Result.PASS, f"{aof}, no failed save or AOF write")


class KeySample(BaseModel):
    """Keys of the backup's RDB sampled while it was staged, for verification to look up."""

    #: The keys, in RDB order (the field is not named `keys`: Prefect takes a model with a
    #: `keys` attribute for a mapping when it passes it between tasks).
    sampled: list[SampledKey] = Field(default_factory=list)
    #: Why no keys, or keys of only part of the RDB, were sampled (a warning in the report).
    missing: str | None = None
    #: Why the restored data may rightly differ from the sample (an AOF's incr files apply
    #: after the base it was taken from): a difference then warns instead of failing.
    later_writes: str | None = None


def check_sampled_keys(report: VerifyReport, endpoint: RedisEndpoint, sample: KeySample) -> None:
    """Each sampled key on the server: present (or expired since, as its TTL said), the same
    TYPE, an expiry iff the backup had one and at the same absolute time."""
    if sample.missing is not None:
        report.add("key sample", Result.WARN, sample.missing)
    if not sample.sampled:
        if sample.missing is None:
            report.add("sampled keys", Result.PASS, "the backup's RDB holds no key to sample")
        return
    by_db: dict[int, list[SampledKey]] = defaultdict(list)
    for sampled in sample.sampled:
        by_db[sampled.db].append(sampled)
    problems: list[str] = []
    expired = 0
    for db, keys in sorted(by_db.items()):
        client = open_client(dataclasses.replace(endpoint, db=db))
        try:
            types, expiries, now_ms, tolerance = _look_up(client, [sampled.key for sampled in keys])
        except redis.ResponseError as exc:
            report.add("sampled keys", Result.WARN, f"could not look up the sampled keys: {exc}")
            return
        except Exception as exc:
            raise translate(exc, endpoint, "sampled keys") from None
        finally:
            client.close()
        for sampled, kind, expiry in zip(keys, types, expiries, strict=True):
            if kind == "none" and sampled.expire_ms is not None and sampled.expire_ms <= now_ms:
                expired += 1
                continue
            difference = _sample_difference(sampled, kind, expiry, tolerance)
            if difference is not None:
                problems.append(f"db{db} key {describe_key(sampled.key)}: {difference}")
    total = len(sample.sampled)
    if problems:
        detail = f"{len(problems)} of {total} keys sampled from the backup differ: " + "; ".join(problems[:3])
        if sample.later_writes is not None:
            report.add("sampled keys", Result.WARN, f"{detail} ({sample.later_writes})")
        else:
            report.add("sampled keys", Result.FAIL, detail)
        return
    gone = f"; {expired} expired since, as their TTL said" if expired else ""
    report.add(
        "sampled keys",
        Result.PASS,
        f"{total} keys sampled from the backup while it was staged: each present with its type and "
        f"expiry{gone}",
    )


def _look_up(client: redis.Redis, keys: list[bytes]) -> tuple[list[str], list[int | None], int, int]:
    """TYPE and absolute expiry (ms, None: none) of each key, the server's time in ms, and how far
    apart expiries may be: 0 with PEXPIRETIME (Redis 7), else PTTL + TIME's tolerance."""
    for command, tolerance in (("PEXPIRETIME", 0), ("PTTL", EXPIRY_TOLERANCE_MS)):
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            pipe.execute_command(command, key)  # type: ignore[no-untyped-call]
        pipe.time()
        replies: list[Any] = pipe.execute(raise_on_error=False)
        errors = [reply for reply in replies[1::2] if isinstance(reply, redis.ResponseError)]
        if errors and command == "PEXPIRETIME" and "unknown command" in str(errors[0]).lower():
            continue  # before Redis 7.0 (or renamed away): the remaining time instead
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        seconds, micros = replies[-1]
        now_ms = seconds * 1000 + micros // 1000
        types = [_text(reply) for reply in replies[:-1:2]]
        expiries = [
            None if reply < 0 else (reply if tolerance == 0 else now_ms + reply) for reply in replies[1:-1:2]
        ]
        return types, expiries, now_ms, tolerance
    raise AssertionError("unreachable: PTTL is always there")


def _sample_difference(sampled: SampledKey, kind: str, expiry: int | None, tolerance: int) -> str | None:
    """How the server's key differs from the sampled one; None when it matches."""
    want = sampled.expire_ms
    if kind == "none":
        return f"missing (the backup has a {sampled.type}" + (f" expiring {_when(want)})" if want else ")")
    if sampled.type == "module" and kind not in BUILTIN_TYPES:
        pass  # a module's value: its TYPE is the module's type name
    elif kind != sampled.type:
        return f"a {kind} on the server, a {sampled.type} in the backup"
    if want is None and expiry is not None:
        return f"expires {_when(expiry)} on the server, never in the backup"
    if want is not None and expiry is None:
        return f"never expires on the server, {_when(want)} in the backup"
    if want is not None and expiry is not None and abs(expiry - want) > tolerance:
        return f"expires {expiry - want:+d} ms from the backup's {_when(want)}"
    return None


def _when(ms: int) -> str:
    """An absolute expiry for messages: UTC to the millisecond."""
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    except (OverflowError, ValueError, OSError):
        return f"at {ms} ms"


def _text(reply: object) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def check_replay(
    report: VerifyReport, manifest: Manifest, load: LoadReport, result: ReplayResult, *, whole: bool
) -> None:
    """A replay's counts: the throwaway loaded what the backup holds; every key scanned was
    written, kept (it existed) or had expired by then. `whole`: every key of every database."""
    expected = report.expected = expected_keyspace(manifest)
    total = sum(stats.key_count for stats in expected.values())
    loaded = load.keys_loaded + load.keys_expired
    exact = manifest.source.rdb_keyspace is not None
    if whole and exact and loaded != total:
        report.add(
            "keys loaded",
            Result.FAIL,
            f"the backup holds {total} keys, the throwaway server loaded {load.keys_loaded} and dropped "
            f"{load.keys_expired} as expired",
        )
    elif whole and loaded != total:  # an AOF backup: its count is INFO's at the cut, not the file's
        report.add(
            "keys loaded",
            Result.WARN,
            f"the throwaway server loaded {load.keys_loaded} (+{load.keys_expired} expired); the backup's "
            f"count, {total}, is what INFO said when it was taken",
        )
    elif whole:
        report.add(
            "keys loaded",
            Result.PASS,
            f"{load.keys_loaded} loaded + {load.keys_expired} dropped as already expired, "
            f"the backup holds {total}",
        )
    for db, replay in sorted(result.databases.items()):
        accounted = replay.written + replay.kept + replay.expired
        detail = (
            f"db{db}: {replay.written} written, {replay.kept} kept (existing), {replay.expired} expired "
            f"before written, of {replay.scanned} scanned"
        )
        if replay.removed:
            detail += f"; {replay.removed} removed first (flush)"
        report.add(f"db{db} keys", Result.PASS if accounted >= replay.scanned else Result.FAIL, detail)


def check_replayed_samples(
    report: VerifyReport,
    throwaway: Callable[[int], redis.Redis],
    target: RedisEndpoint,
    dbs: list[int],
    *,
    match: str | None,
    count: int,
    keep_existing: bool,
) -> None:
    """Sampled keys hold in the target what they hold in the throwaway server (type, value, expiry);
    with keep_existing only their presence is checked (a kept key holds the target's own value)."""
    problems: list[str] = []
    sampled = 0
    for db in dbs:
        source = throwaway(db)
        client = open_client(dataclasses.replace(target, db=db))
        try:
            keys = sample_keys(source, count, db, match)
            sampled += len(keys)
            if keep_existing:
                problems += [f"db{db} key {describe_key(k)} is missing" for k in keys if not client.exists(k)]
            else:
                problems += [f"db{db} {line}" for line in compare_keys(source, client, keys)]
        except redis.ResponseError as exc:
            report.add("sampled keys", Result.WARN, f"could not compare sampled keys: {exc}")
            return
        except Exception as exc:
            raise translate(exc, target, "sampled keys") from None
        finally:
            client.close()
            source.close()
    if problems:
        report.add(
            "sampled keys", Result.FAIL, f"{len(problems)} of {sampled} differ: " + "; ".join(problems[:3])
        )
    else:
        what = "present" if keep_existing else "equal in type, value and expiry"
        report.add("sampled keys", Result.PASS, f"{sampled} keys {what} in the throwaway and the target")
