"""RTO drills on real targets: a local redis-server and a Docker container, killed and restored.

Each drill's figures are checked against what the test did: the keys it wrote after
the backup are the keys lost, the marker is gone, the history is read back and a
slower drill is flagged. A drill on a protected environment touches nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from flows.backup import backup
from flows.drill import drill
from redis_dr.config import build_request
from redis_dr.drill.history import DrillRecord, history_prefix, read_history, write_record
from redis_dr.drill.probe import MARKER_PREFIX
from redis_dr.drill.request import DrillRequest
from redis_dr.errors import IntegrityError, RefusedError
from redis_dr.manifest import Manifest, backup_id_for
from redis_dr.platforms.base import ServerState
from redis_dr.storage import open_storage
from tests.fixtures.targets import TargetServer
from tests.integration.cli import run_cli
from tests.integration.datasets import assert_holds, read_dataset

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]
Factory = Callable[..., TargetServer]
INSTANCE = "sessions"
SESSIONS = 50
WRITTEN_AFTER = 7


def filled_and_backed_up(target: TargetServer, storage: str) -> Manifest:
    """50 sessions in db0 and 3 keys in db2, backed up; then 7 more sessions the backup lacks."""
    client = target.client()
    client.mset({f"session:{i}": i for i in range(SESSIONS)})
    target.client(db=2).mset({f"cart:{i}": i for i in range(3)})
    manifest = backup(build_request(instance=INSTANCE, redis_url=f"redis://127.0.0.1:{target.port}/0",
                                    storage=[storage]))  # fmt: skip
    client.mset({f"late:{i}": i for i in range(WRITTEN_AFTER)})
    return manifest


def seed_history(storage: str, rto_seconds: float, count: int) -> list[DrillRecord]:
    """`count` earlier drills a day apart, each with this RTO, in the history."""
    location = open_storage(storage)
    records = []
    try:
        for days in range(count, 0, -1):
            moment = datetime.now(UTC) - timedelta(days=days)
            records.append(write_record(location, DrillRecord(
                id=backup_id_for(moment), instance=INSTANCE, target="earlier", strategy="file",
                backup_id=backup_id_for(moment - timedelta(hours=1)), backup_created_at=moment,
                killed_at=moment, rto_seconds=rto_seconds, rto_target_seconds=300, passed=True,
            )))  # fmt: skip
    finally:
        location.close()
    return records


def test_a_drill_on_a_local_target_measures_recovery_and_flags_a_slower_one(
    local_target_factory: Factory, tmp_path: Path
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    target = local_target_factory()
    manifest = filled_and_backed_up(target, storage)
    expected = read_dataset(target.client())  # late keys included: drop them below
    for i in range(WRITTEN_AFTER):
        expected[0].pop(f"late:{i}".encode())
    seeded = seed_history(storage, rto_seconds=0.001, count=3)  # far faster than any real drill
    (tmp_path / "backups" / history_prefix(INSTANCE) / "notes.txt").write_text("not a record")

    first = drill(DrillRequest(instance=INSTANCE, storage=[storage], target=target.platform.target))

    assert first.passed and first.backup_id == manifest.id
    assert first.rto_seconds is not None and first.rto_seconds > 0
    assert {"kill", "find", "preflight", "fetch", "place", "load", "verify"} <= set(first.phases)
    assert first.rto_seconds >= sum(first.phases.values()) - 0.05  # phases are parts of kill-to-verified
    point = first.recovery_point
    assert point is not None and point.marker_gone
    assert point.keys_lost == {0: WRITTEN_AFTER + 1, 2: 0}  # the late keys and the marker
    assert point.keys_before == {0: SESSIONS + WRITTEN_AFTER + 1, 2: 3}
    assert first.killed_at is not None
    age = (first.killed_at - manifest.created_at).total_seconds()
    assert point.backup_age_seconds == pytest.approx(age, abs=0.01)
    assert target.platform.state() is ServerState.RUNNING
    assert_holds(expected, target.client())
    assert not target.client().keys(f"{MARKER_PREFIX}*")
    assert first.trend is not None and first.trend.median_before == pytest.approx(0.001)
    assert first.trend.regression and first.regression  # flagged, although it passed
    assert [r.id for r in first.history[1:]] == [r.id for r in reversed(seeded)]
    assert any("notes.txt" in line for line in first.unreadable)

    second = drill(DrillRequest(instance=INSTANCE, storage=[storage], target=target.platform.target))

    assert second.passed
    history = read_history(open_storage(storage), INSTANCE)
    assert [r.id for r in history.records[:2]] == [second.history[0].id, first.history[0].id]
    stored_first = history.records[1]
    assert stored_first.rto_seconds == first.rto_seconds and stored_first.regression
    assert stored_first.keys_lost == WRITTEN_AFTER + 1 and stored_first.backup_id == manifest.id
    assert second.recovery_point is not None and second.recovery_point.keys_lost == {0: 1, 2: 0}  # the marker


def test_a_drill_on_a_docker_target_through_the_command(
    docker_target_factory: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    target = docker_target_factory()
    manifest = filled_and_backed_up(target, storage)

    code, out, err = run_cli(capsys, "drill", "--target", target.platform.target, "--storage", storage,
                             "--instance", INSTANCE, "--rto-target", "10m", "--yes", "--json")  # fmt: skip

    assert code == 0, err
    assert "drill plan" in err and "KILL:" in err
    outcome = json.loads(out)
    assert outcome["passed"] and outcome["backup_id"] == manifest.id and outcome["rto_seconds"] > 0
    assert outcome["recovery_point"]["keys_lost"] == {"0": WRITTEN_AFTER + 1, "2": 0}
    assert outcome["recovery_point"]["marker_gone"]
    assert target.client().dbsize() == SESSIONS and target.client(db=2).dbsize() == 3
    assert target.platform.state() is ServerState.RUNNING
    assert len(read_history(open_storage(storage), INSTANCE).records) == 1


def test_a_drill_is_refused_on_a_protected_environment_or_unconfirmed_and_touches_nothing(
    local_target_factory: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    target = local_target_factory()
    filled_and_backed_up(target, storage)
    before = read_dataset(target.client())
    env_file = tmp_path / "production.yaml"
    env_file.write_text(yaml.safe_dump({
        "environment": "production", "protected": True,
        "instances": {INSTANCE: {"storage": [storage], "target": target.platform.target}},
    }))  # fmt: skip

    code, _, err = run_cli(capsys, "drill", "--env-file", str(env_file), "--instance", INSTANCE, "--yes")
    assert code == 2, err
    assert "protected" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert "drill plan" not in err

    code, _, err = run_cli(capsys, "drill", "--target", target.platform.target, "--storage", storage,
                           "--instance", INSTANCE)  # fmt: skip
    assert code == 6, err  # allowed, but no terminal to confirm on and no --yes: refused after the plan
    assert "drill plan" in err and "pass --yes" in err.strip().splitlines()[-1]

    with pytest.raises(RefusedError, match="protected"):
        drill(DrillRequest(instance=INSTANCE, storage=[storage], target=target.platform.target,
                           environment="production", protected=True))  # fmt: skip

    assert target.platform.state() is ServerState.RUNNING
    assert read_dataset(target.client()) == before
    assert not list(open_storage(storage).list(history_prefix(INSTANCE)))


def test_a_drill_whose_restore_fails_says_the_target_is_down_and_how_to_restore_it(
    local_target_factory: Factory, tmp_path: Path
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    target = local_target_factory()
    manifest = filled_and_backed_up(target, storage)
    stored = tmp_path / "backups" / INSTANCE / manifest.id / manifest.files[0].name
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the manifest still reads: the damage shows when the bytes are staged
    stored.write_bytes(bytes(data))

    with pytest.raises(IntegrityError) as failed:
        drill(DrillRequest(instance=INSTANCE, storage=[storage], target=target.platform.target))

    line = str(failed.value)
    assert "after the kill" in line and "may be down" in line
    assert f"redis-dr restore --storage '{storage}' --instance {INSTANCE} --target {target.platform.target} " \
           f"--backup {manifest.id}" in line  # fmt: skip
    assert target.platform.state() is ServerState.STOPPED  # as the restore left it: nothing placed
    [record] = read_history(open_storage(storage), INSTANCE).records
    assert not record.passed and record.rto_seconds is None and "may be down" in (record.failure or "")
