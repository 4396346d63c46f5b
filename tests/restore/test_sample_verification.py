"""Verification looks up keys sampled from the backup while it was staged, against real servers.

Each difference (missing, another type, an expiry gained, lost or moved) fails
with the key named shortened; keys whose TTL has passed may be gone; a restore
whose target drops keys after the load is rolled back; a real restore passes,
from an RDB and from an AOF backup's base file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from flows.backup import backup
from flows.restore import restore
from redis_dr.config import build_request
from redis_dr.manifest import BackupKind
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.redis.rdb_sample import SampledKey
from redis_dr.redis.rdb_scan import RdbCounter
from redis_dr.restore.file_restore import RestoreFailedError
from redis_dr.restore.request import build_restore_request
from redis_dr.restore.verify import Finding, KeySample, Result, VerifyReport, check_sampled_keys
from redis_dr.sandbox.redis_server import RedisServer
from tests.fixtures.targets import TargetServer
from tests.integration.datasets import assert_holds, fill_every_type, read_dataset

pytestmark = pytest.mark.integration
Factory = Callable[..., TargetServer]

SECRET = "session:" + "0123456789abcdef" * 3  # a key name that must not appear whole in a report
SHOWN = "'session:01234567'... (56 chars)"


def endpoint(server: RedisServer) -> RedisEndpoint:
    return RedisEndpoint.from_url(server.url, env={})


def sample_of(server: RedisServer) -> list[SampledKey]:
    """Every key of the server's saved dump, as the scanner samples it."""
    server.client().save()
    counter = RdbCounter(sample=1 << 20)
    data = (server.data_dir / "dump.rdb").read_bytes()
    for _ in counter.tap(data[i : i + 1] for i in range(len(data))):  # a grid point at every key
        pass
    assert counter.complete
    return counter.samples()


def check(server: RedisServer, sample: KeySample) -> list[Finding]:
    report = VerifyReport()
    check_sampled_keys(report, endpoint(server), sample)
    return report.findings


@dataclass
class BackedUp:
    """A server, and every key of its dump as the scanner sampled it."""

    server: RedisServer
    sample: list[SampledKey]


@pytest.fixture
def backed_up(redis_factory: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch) -> BackedUp:
    """A server whose keys were all sampled from its dump, then left as they were."""
    monkeypatch.setattr("redis_dr.redis.rdb_scan._FIRST_STRIDE", 1)
    server = redis_factory()
    c, c2 = server.client(), server.client(db=2)
    c.set(SECRET, "user data", px=3_600_000)
    c.hset("profile", "name", "ann")
    c.rpush("queue", "a", "b")
    c.set("counter", 7, px=7_200_000)
    c2.sadd("tags", "x")
    c2.zadd("board", {"ann": 3})
    return BackedUp(server, sample_of(server))


def test_a_server_that_holds_the_sampled_keys_passes(backed_up: BackedUp) -> None:
    sample: list[SampledKey] = backed_up.sample
    assert {(s.db, s.type) for s in sample} == {
        (0, "string"), (0, "hash"), (0, "list"), (2, "set"), (2, "zset")
    }  # fmt: skip
    [finding] = check(backed_up.server, KeySample(sampled=sample))
    assert (finding.name, finding.result) == ("sampled keys", Result.PASS)
    assert finding.detail.startswith("6 keys sampled from the backup while it was staged: each present")


@pytest.mark.parametrize(
    ("change", "name", "difference"),
    [
        (lambda c: c.delete(SECRET), SHOWN, "missing (the backup has a string expiring 20"),
        (
            lambda c: c.delete("profile") and c.set("profile", "x"),
            "'profile'",
            "a string on the server, a hash in",
        ),
        (lambda c: c.persist("counter"), "'counter'", "never expires on the server, 20"),
        (lambda c: c.expire("queue", 600), "'queue'", "expires 20"),
        (lambda c: c.pexpire("counter", 9_000_000), "'counter'", "expires +"),
    ],
    ids=["missing", "type", "expiry-lost", "expiry-gained", "expiry-moved"],
)
def test_each_difference_fails_naming_the_key_shortened(
    backed_up: BackedUp, change: Callable[[redis.Redis], object], name: str, difference: str
) -> None:
    change(backed_up.server.client())
    [finding] = check(backed_up.server, KeySample(sampled=backed_up.sample))
    assert (finding.name, finding.result) == ("sampled keys", Result.FAIL)
    assert finding.detail.startswith(
        f"1 of 6 keys sampled from the backup differ: db0 key {name}: {difference}"
    )
    assert SECRET not in finding.detail
    assert VerifyReport(findings=[finding]).summary().startswith("verification failed: sampled keys: 1 of 6")


def test_a_key_whose_ttl_passed_may_be_gone_one_still_due_may_not(backed_up: BackedUp) -> None:
    seconds, micros = backed_up.server.client().time()
    now_ms = seconds * 1000 + micros // 1000
    passed = SampledKey(db=0, key=b"expired:1", type="string", expire_ms=now_ms - 1000)
    [finding] = check(backed_up.server, KeySample(sampled=[passed]))
    assert finding.result is Result.PASS and "1 expired since, as their TTL said" in finding.detail
    due = SampledKey(db=0, key=b"expired:2", type="string", expire_ms=now_ms + 3_600_000)
    [finding] = check(backed_up.server, KeySample(sampled=[passed, due]))
    assert finding.result is Result.FAIL
    assert "1 of 2 keys sampled from the backup differ: db0 key 'expired:2': missing" in finding.detail


def test_a_module_value_must_not_come_back_as_a_builtin_type(backed_up: BackedUp) -> None:
    module = SampledKey(db=0, key=b"profile", type="module")
    [finding] = check(backed_up.server, KeySample(sampled=[module]))
    assert finding.result is Result.FAIL and "a hash on the server, a module in the backup" in finding.detail


def test_writes_after_the_sampled_base_turn_differences_into_warnings(backed_up: BackedUp) -> None:
    backed_up.server.client().delete("queue")
    later = "the AOF's incr files (120 bytes of commands) apply after the base the keys come from"
    [finding] = check(backed_up.server, KeySample(sampled=backed_up.sample, later_writes=later))
    assert finding.result is Result.WARN
    assert "db0 key 'queue': missing" in finding.detail and finding.detail.endswith(f"({later})")


def test_no_sample_is_a_warning_saying_why(backed_up: BackedUp) -> None:
    why = "no keys sampled: the AOF backup's base file x.base.aof holds commands, not an RDB"
    assert [(f.name, f.result, f.detail) for f in check(backed_up.server, KeySample(missing=why))] == [
        ("key sample", Result.WARN, why)
    ]


def test_without_pexpiretime_the_remaining_time_is_compared(
    redis_factory: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Servers before 7.0 (here: the command renamed away) answer PTTL: a tolerance, not equality."""
    monkeypatch.setattr("redis_dr.redis.rdb_scan._FIRST_STRIDE", 1)
    server = redis_factory({"rename-command": 'PEXPIRETIME ""'})
    server.client().set("k", "v", px=3_600_000)
    server.client().set("j", "v", px=3_600_000)
    sample = sample_of(server)
    [finding] = check(server, KeySample(sampled=sample))
    assert finding.result is Result.PASS
    server.client().pexpire("k", 3_610_000)
    [finding] = check(server, KeySample(sampled=sample))
    assert finding.result is Result.FAIL and "db0 key 'k': expires +" in finding.detail


# Through the restore flow, into local targets.


@pytest.fixture
def source(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    server = redis_factory()
    fill_every_type(server.client())
    return server


def sampled_finding(findings: list[Finding]) -> Finding:
    [finding] = [f for f in findings if f.name == "sampled keys"]
    return finding


@pytest.mark.usefixtures("prefect_harness")
def test_a_file_restore_looks_up_the_keys_sampled_while_staging(
    source: RedisServer, local_target_factory: Factory, tmp_path: Path
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    backup(build_request(instance="sessions", redis_url=source.url, storage=[storage]))
    target = local_target_factory()

    outcome = restore(
        build_restore_request(
            instance="sessions", storage=storage, target=target.platform.target, checkpoint=False
        ),
        approved=True,
    )

    finding = sampled_finding(outcome.verification.findings)
    assert finding.result is Result.PASS
    assert int(finding.detail.split()[0]) >= 30  # about 100 asked, spread over a 26 KB RDB
    assert_holds(read_dataset(source.client()), target.client())


@pytest.mark.usefixtures("prefect_harness")
def test_a_target_that_drops_keys_after_the_load_fails_verification_and_is_rolled_back(
    source: RedisServer, local_target_factory: Factory, tmp_path: Path
) -> None:
    """maxmemory below what the backup needs: the load succeeds, the first command evicts every
    key with a TTL. The counts pass (only keys with a TTL are missing: they may have expired);
    the keys sampled with a TTL are missing, and fail the restore."""
    storage = f"file://{tmp_path / 'backups'}"
    backup(build_request(instance="sessions", redis_url=source.url, storage=[storage]))
    target = local_target_factory({"maxmemory": "1", "maxmemory-policy": "volatile-random"})
    client = target.client()
    client.config_set("maxmemory", "0")  # for the previous data to be written; the file says 1
    client.set("old-data", "still here")  # no TTL: never evicted
    client.save()
    client.config_set("maxmemory", "1")

    with pytest.raises(
        RestoreFailedError, match="rolled back: the target runs with its previous data"
    ) as caught:
        restore(
            build_restore_request(instance="sessions", storage=storage, target=target.platform.target,
                                  checkpoint=False),
            approved=True,
        )  # fmt: skip

    report = caught.value.__cause__.report  # type: ignore[union-attr]
    findings = {f.name: f.result for f in report.findings}
    assert findings["keys loaded"] is Result.PASS and findings["db0 keys"] is Result.PASS
    finding = sampled_finding(report.findings)
    assert finding.result is Result.FAIL and ": missing (the backup has a string expiring " in finding.detail
    assert target.client().get("old-data") == b"still here"


AOF_CONFIG = {"appendonly": "yes", "aof-use-rdb-preamble": "yes"}


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("preamble", ["yes", "no"])
def test_an_aof_backup_is_sampled_from_its_rdb_base(
    local_target_factory: Factory, tmp_path: Path, preamble: str
) -> None:
    """An RDB base is sampled (keys the incr file changed later only warn); an AOF base is not."""
    origin = local_target_factory({"appendonly": "yes", "aof-use-rdb-preamble": preamble})
    fill_every_type(origin.client())
    origin.client().bgrewriteaof()
    while origin.client().info("persistence")["aof_rewrite_in_progress"]:
        time.sleep(0.05)  # until the server says the rewrite is over
    for key in list(origin.client().scan_iter(count=1000)):  # after the base: the incr file
        origin.client().delete(key)
    origin.client().set("after-the-base", "x")
    storage = f"file://{tmp_path / 'backups'}"
    manifest = backup(build_request(instance="sessions", storage=[storage], kind="aof",
                                    target=origin.platform.target))  # fmt: skip
    assert manifest.kind is BackupKind.AOF
    target = local_target_factory({"appendonly": "yes"})

    outcome = restore(
        build_restore_request(
            instance="sessions", storage=storage, target=target.platform.target, checkpoint=False
        ),
        approved=True,
    )

    assert target.client().get("after-the-base") == b"x"
    findings = {f.name: f for f in outcome.verification.findings}
    if preamble == "yes":
        finding = findings["sampled keys"]
        assert finding.result is Result.WARN and ": missing (the backup has a " in finding.detail
        assert "incr files" in finding.detail and "apply after the base the keys come from" in finding.detail
    else:
        assert "sampled keys" not in findings
        assert findings["key sample"].result is Result.WARN
        assert "holds commands, not an RDB (aof-use-rdb-preamble no)" in findings["key sample"].detail
