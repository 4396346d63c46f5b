"""Restore requests, placement and preflight decisions: pure logic, no servers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from redis_dr.errors import ConfigError, UnsupportedError
from redis_dr.manifest import BackupKind, Manifest
from redis_dr.platforms.base import DataLayout, ServerState
from redis_dr.redis.info import KeyspaceStats, parse_info
from redis_dr.restore.placement import plan_placement
from redis_dr.restore.plan import Verdict
from redis_dr.restore.preflight import TargetFacts, explain_refusal, make_plan
from redis_dr.restore.request import RestoreStrategy, build_restore_request
from redis_dr.restore.source import BackupSource
from redis_dr.storage import open_storage
from tests.manifests import manifest_for

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _manifest(rdb_version: int = 10, kind: BackupKind = BackupKind.RDB) -> Manifest:
    manifest = manifest_for("20261125T110000Z", b"x" * 1000, instance="sessions")
    source = manifest.source.model_copy(update={"rdb_version": rdb_version})
    return manifest.model_copy(update={"source": source, "kind": kind})


def _facts(*, role: str = "master", version: str = "7.0.15", replicas: int = 0) -> TargetFacts:
    info = parse_info(
        f"redis_version:{version}\r\nrole:{role}\r\nconnected_slaves:{replicas}\r\n"
        "master_host:10.0.0.9\r\ndb0:keys=5,expires=1\r\n"
    )
    return TargetFacts(
        description="redis-server of /etc/redis.conf",
        state=ServerState.RUNNING,
        facts=info,
        layout=DataLayout(dir="/var/lib/redis"),
        free_bytes=10**9,
        owner=(999, 999),
    )


def _plan(tmp_path: Path, facts: TargetFacts, manifest: Manifest | None = None, **request: object):  # type: ignore[no-untyped-def]
    fields = {"instance": "sessions", "storage": f"file://{tmp_path}", "target": "local:///etc/redis.conf"}
    fields.update(request)
    source = BackupSource(open_storage(f"file://{tmp_path}"), manifest or _manifest())
    return make_plan(build_restore_request(**fields), source, facts, tag="T", now=NOW, have_identity=False)


def test_a_healthy_target_is_planned_without_refusals(tmp_path: Path) -> None:
    plan, placement = _plan(tmp_path, _facts())
    assert plan.refusals == []
    assert placement is not None and placement.swap == ["dump.rdb"]
    assert plan.checkpoint
    assert plan.backup.age_seconds == 3600
    text = "\n".join(plan.lines())
    assert "stop the target without saving" in text and "pre-restore" in text


def test_a_newer_rdb_version_is_refused_naming_both_versions(tmp_path: Path) -> None:
    plan, _ = _plan(tmp_path, _facts(version="7.0.15"), _manifest(rdb_version=12))
    (refusal,) = plan.refusals
    assert refusal.name == "RDB version"
    assert "RDB v12" in refusal.detail and "7.0.15" in refusal.detail and "v10" in refusal.detail
    assert explain_refusal(plan).startswith("restore refused before touching the target: RDB version")


def test_a_replica_is_refused_and_a_master_with_replicas_warned(tmp_path: Path) -> None:
    plan, _ = _plan(tmp_path, _facts(role="slave"))
    assert [c.name for c in plan.refusals] == ["role"]
    assert "10.0.0.9" in plan.refusals[0].detail
    plan, _ = _plan(tmp_path, _facts(replicas=2))
    role = next(c for c in plan.checks if c.name == "role")
    assert role.verdict is Verdict.WARN and "2 replica" in role.detail


def test_sentinel_refuses_the_file_strategy_unless_allowed_and_suggests_replay(tmp_path: Path) -> None:
    target = _facts()
    target.sentinels = ["sentinel-1a2b-cmd", "sentinel-1a2b-pubsub"]
    plan, _ = _plan(tmp_path, target)
    (refusal,) = plan.refusals
    assert refusal.name == "sentinel" and "replay" in refusal.detail
    plan, _ = _plan(tmp_path, target, allow_sentinel=True)
    assert plan.refusals == []
    plan, _ = _plan(tmp_path, target, strategy="replay")
    assert plan.refusals == []


def test_not_enough_disk_is_refused_and_little_room_warned(tmp_path: Path) -> None:
    target = _facts()
    target.free_bytes = 500
    plan, _ = _plan(tmp_path, target)
    assert [c.name for c in plan.refusals] == ["disk space"]
    target.free_bytes = 1500
    plan, _ = _plan(tmp_path, target)
    assert next(c for c in plan.checks if c.name == "disk space").verdict is Verdict.WARN


def test_a_stopped_target_gets_no_checkpoint_but_keeps_its_files(tmp_path: Path) -> None:
    target = TargetFacts(
        description="x", state=ServerState.STOPPED, layout=DataLayout(dir="/data"), free_bytes=10**9,
        unreachable="not running",
    )
    plan, _ = _plan(tmp_path, target)
    assert plan.refusals == []
    assert not plan.checkpoint
    checkpoint = next(c for c in plan.checks if c.name == "checkpoint")
    assert checkpoint.verdict is Verdict.WARN and "/data/.redis-dr/aside-T" in checkpoint.detail


def test_replay_into_a_server_that_does_not_answer_is_refused(tmp_path: Path) -> None:
    target = TargetFacts(description="live", state=ServerState.RUNNING, unreachable="connection refused")
    plan, _ = _plan(tmp_path, target, target=None, redis_url="redis://127.0.0.1:1")
    assert plan.strategy == "replay"
    assert "target" in [c.name for c in plan.refusals]


def test_an_encrypted_backup_without_an_identity_is_refused(tmp_path: Path) -> None:
    manifest = _manifest()
    manifest.files[0].encrypted_to = ["age1xyz"]
    plan, _ = _plan(tmp_path, _facts(), manifest)
    assert "decryption" in [c.name for c in plan.refusals]


def test_an_rdb_into_an_appendonly_target_becomes_the_base_of_a_fresh_aof() -> None:
    layout = DataLayout(dir="/data", appendonly=True, appenddirname="aof", appendfilename="redis.aof")
    placement = plan_placement(_manifest(), layout)
    assert set(placement.files) == {"aof/redis.aof.1.base.rdb"}
    assert placement.generated == {"aof/redis.aof.manifest": b"file redis.aof.1.base.rdb seq 1 type b\n"}
    assert placement.swap == ["aof", "dump.rdb"]  # the old dump.rdb goes aside too: it would be stale


def test_an_aof_backup_keeps_its_file_names_and_takes_the_targets_manifest_name() -> None:
    manifest = _manifest(kind=BackupKind.AOF)
    base, incr, listing = (manifest.files[0].model_copy(update={"original_name": name}) for name in (
        "appendonly.aof.3.base.rdb", "appendonly.aof.3.incr.aof", "appendonly.aof.manifest"))
    manifest = manifest.model_copy(update={"files": [base, incr, listing]})
    layout = DataLayout(dir="/data", appendonly=True, appendfilename="other.aof")
    placement = plan_placement(manifest, layout)
    assert set(placement.files) == {
        "appendonlydir/appendonly.aof.3.base.rdb", "appendonlydir/appendonly.aof.3.incr.aof",
        "appendonlydir/other.aof.manifest",
    }
    with pytest.raises(UnsupportedError, match="appendonly no"):
        plan_placement(manifest, DataLayout(dir="/data"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"target": None}, "target or a redis_url"),
        ({"target": "redis://127.0.0.1:6379", "strategy": "file"}, "data directory"),
        ({"match": "session:*"}, "only apply to strategy replay"),
        ({"strategy": "replay", "flush": True, "keep_existing": True}, "contradict"),
        ({"storage": []}, "where the backups are"),
        ({"target": "docker://"}, "docker://CONTAINER"),
        ({"target": "local://relative.conf"}, "absolute path"),
        ({"target": "ftp://x"}, "not understood"),
    ],
)
def test_bad_requests_are_refused_with_one_line(fields: dict[str, object], message: str) -> None:
    base = {"instance": "sessions", "storage": "file:///b", "target": "local:///etc/redis.conf"}
    with pytest.raises(ConfigError, match=message) as caught:
        build_restore_request(**{**base, **fields})
    assert "\n" not in str(caught.value)


def test_the_default_strategy_follows_the_target() -> None:
    base = {"instance": "sessions", "storage": "file:///b"}
    assert build_restore_request(**base, target="docker://redis").effective_strategy is RestoreStrategy.FILE
    assert build_restore_request(**base, redis_url="redis://127.0.0.1:1").effective_strategy is RestoreStrategy.REPLAY
    file_only = build_restore_request(instance="s", backup="/x/redis-20250101-000000.rdb", target="docker://r")
    assert file_only.storage == []


def test_keyspace_in_the_plan_comes_from_the_rdb_count(tmp_path: Path) -> None:
    manifest = _manifest()
    source = manifest.source.model_copy(update={"rdb_keyspace": {0: KeyspaceStats(keys=7, expires=2)}})
    plan, _ = _plan(tmp_path, _facts(), manifest.model_copy(update={"source": source}))
    assert plan.backup.total_keys == 7
    assert "db0 7 keys (2 expiring)" in "\n".join(plan.lines())
