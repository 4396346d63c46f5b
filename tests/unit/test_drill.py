"""The drill's pure parts: the plan, the recovery point, the verdict, the trend and the report."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from redis_dr.drill.history import DrillRecord, trend
from redis_dr.drill.measure import (
    DrillOverTargetError,
    failures,
    format_seconds,
    phase_rows,
    recovery_point,
)
from redis_dr.drill.plan import make_plan, restore_request
from redis_dr.drill.report import DrillOutcome, markdown
from redis_dr.drill.request import DrillRequest
from redis_dr.redis.info import KeyspaceStats
from redis_dr.restore.plan import BackupSummary, Check, RestorePlan, TargetSummary, Verdict
from redis_dr.restore.request import RestoreStrategy

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TARGET = "local:///etc/redis/redis.conf"


def _request(**fields: object) -> DrillRequest:
    return DrillRequest.model_validate({"instance": "sessions", "storage": ["file:///backups"], "target": TARGET,
                                        **fields})  # fmt: skip


def _restore_plan(*checks: Check, strategy: str = "file") -> RestorePlan:
    return RestorePlan(
        tag="20261125T120000-000Z",
        instance="sessions",
        strategy=strategy,
        backup=BackupSummary(
            id="20261125T110000Z", where="file:///backups", kind="rdb", created_at=NOW - timedelta(hours=1),
            age_seconds=3590, raw_size=2_000_000, stored_size=1_000_000, rdb_version=10, redis_version="7.0.15",
            keyspace={0: KeyspaceStats(keys=40, expires=10), 2: KeyspaceStats(keys=2, expires=0)},
        ),
        target=TargetSummary(name=TARGET, description="redis-server on this host from /etc/redis/redis.conf",
                             state="running", reachable=True, data_dir="/var/lib/redis"),
        checks=list(checks),
        steps=["stage", "stop the target without saving", "verify"],
    )


def _record(rto: float | None, *, days_ago: int = 1, passed: bool = True) -> DrillRecord:
    moment = NOW - timedelta(days=days_ago)
    return DrillRecord(
        id=moment.strftime("%Y%m%dT%H%M%SZ"), instance="sessions", target="t", strategy="file",
        backup_id="20261120T000000Z", backup_created_at=moment - timedelta(minutes=30), killed_at=moment,
        rto_seconds=rto, rto_target_seconds=300, rpo_seconds=1800, keys_lost=3, passed=passed,
    )  # fmt: skip


# --- the plan ------------------------------------------------------------------------------


def test_the_plan_names_what_is_killed_which_backup_comes_back_its_age_strategy_and_target() -> None:
    plan = make_plan(
        _request(rto_target="2m"),
        _restore_plan(
            Check(name="target", verdict=Verdict.OK, detail="answers; it is stopped without saving"),
            Check(name="RDB version", verdict=Verdict.OK, detail="backup RDB v10"),
            Check(name="checkpoint", verdict=Verdict.OK, detail="skipped as asked"),
        ),
        NOW,
    )
    text = "\n".join(plan.lines())
    assert "KILL:     redis-server on this host from /etc/redis/redis.conf (running)" in text
    assert "backup 20261125T110000Z, taken 60 min 0 s ago (42 keys" in text
    assert "strategy: file; RTO target 2 min 0 s" in text
    assert "file:///backups/sessions/drills/" in text
    assert [check.name for check in plan.checks] == ["RDB version"]  # the restore's words about a live stop go
    assert not plan.refusals
    assert not any("stop the target" in step for step in plan.steps)
    assert plan.steps.index(next(s for s in plan.steps if s.startswith("kill"))) == 1  # marker first, then kill


def test_a_refusal_of_the_restore_refuses_the_drill_and_replay_restarts_the_target_first() -> None:
    refused = Check(name="role", verdict=Verdict.REFUSE, detail="the target is a replica")
    plan = make_plan(_request(strategy="replay"), _restore_plan(refused, strategy="replay"), NOW)
    assert plan.refusals == [refused]
    assert any(step.startswith("start the killed target again") for step in plan.steps)
    assert "replay" in plan.markdown() and "| refuse | role |" in plan.markdown()


def test_the_restore_after_the_kill_has_no_checkpoint_and_a_replay_flushes() -> None:
    by_file = restore_request(_request(), backup="20261125T110000Z")
    assert by_file.backup == "20261125T110000Z" and not by_file.checkpoint and not by_file.flush
    assert by_file.effective_strategy is RestoreStrategy.FILE
    replay = restore_request(_request(strategy="replay"))
    assert replay.flush and not replay.checkpoint and replay.effective_strategy is RestoreStrategy.REPLAY


def test_a_drill_request_refuses_a_url_target_and_a_zero_objective() -> None:
    with pytest.raises(ValueError, match="kills the target's process"):
        _request(target="redis://127.0.0.1:6379")
    with pytest.raises(ValueError, match="longer than zero"):
        _request(rto_target="0s")


# --- the recovery point and the verdict ----------------------------------------------------


def test_the_recovery_point_is_the_backups_age_at_the_kill_and_the_net_keys_lost_per_database() -> None:
    point = recovery_point(
        backup_created_at=datetime(2026, 11, 25, 11, 0),  # no zone: taken as UTC
        killed_at=NOW,
        before={0: 108, 2: 3},
        after={0: 100, 3: 1},
        marker_gone=True,
    )
    assert point.backup_age_seconds == 3600
    assert point.keys_lost == {0: 8, 2: 3, 3: -1}
    assert point.total_lost == 10


def test_a_drill_fails_over_its_target_or_when_the_marker_survives_and_passes_otherwise() -> None:
    gone = recovery_point(backup_created_at=NOW, killed_at=NOW, before={0: 1}, after={}, marker_gone=True)
    kept = gone.model_copy(update={"marker_gone": False})
    assert failures(rto_seconds=300, rto_target_seconds=300, point=gone) == []
    [over] = failures(rto_seconds=300.5, rto_target_seconds=300, point=gone)
    assert over == "RTO 300.5 s is over the target of 5 min 0 s"
    [survived] = failures(rto_seconds=1, rto_target_seconds=300, point=kept)
    assert "marker key" in survived and "still there" in survived


def test_phases_are_listed_in_drill_order_and_durations_read_well() -> None:
    assert [name for name, _ in phase_rows({"verify": 1, "kill": 0.1, "fetch": 2, "custom": 3})] == [
        "kill", "fetch", "verify", "custom",
    ]  # fmt: skip
    assert [format_seconds(s) for s in (4.25, 125, 9000)] == ["4.2 s", "2 min 5 s", "2.5 h"]


def test_a_failed_drills_error_keeps_its_outcome_and_exit_code_across_pickling() -> None:
    error = pickle.loads(pickle.dumps(DrillOverTargetError("slow", {"rto": 400})))
    assert isinstance(error, DrillOverTargetError) and error.exit_code == 7
    assert str(error) == "slow" and error.outcome == {"rto": 400}


# --- the trend ------------------------------------------------------------------------------


def test_no_trend_before_three_previous_drills_with_an_rto() -> None:
    compared = trend(100.0, [_record(1.0), _record(None, passed=False), _record(1.0, days_ago=2)])
    assert compared.previous == 2 and compared.median_before is None and not compared.regression
    assert "no trend yet" in compared.line(100.0)


def test_a_drill_much_slower_than_the_median_is_flagged_and_one_within_it_is_not() -> None:
    previous = [_record(rto, days_ago=days) for days, rto in enumerate([2.0, 3.0, 4.0, 100.0], start=1)]
    slower = trend(5.3, previous)  # median 3.5: 1.51x
    assert slower.median_before == 3.5 and slower.regression
    assert "REGRESSION" in slower.line(5.3)
    within = trend(5.2, previous)  # 1.49x
    assert not within.regression and "within the trend" in within.line(5.2)


def test_the_median_is_taken_of_the_ten_newest_previous_drills() -> None:
    newest = [_record(10.0, days_ago=days) for days in range(1, 11)]
    oldest = [_record(1000.0, days_ago=days) for days in range(11, 20)]
    assert trend(16.0, newest + oldest).regression  # the old slow ones do not raise the median


# --- the report -----------------------------------------------------------------------------


def test_the_report_puts_the_verdict_first_then_flags_a_regression_and_shows_the_history() -> None:
    point = recovery_point(backup_created_at=NOW - timedelta(minutes=5), killed_at=NOW, before={0: 11},
                           after={0: 10}, marker_gone=True)  # fmt: skip
    current = _record(9.0, days_ago=0).model_copy(update={"regression": True})
    outcome = DrillOutcome(
        tag="t", instance="sessions", target="x", strategy="file", backup_id="20261125T115500Z",
        phases={"kill": 0.1, "load": 5.0}, rto_seconds=9.0, rto_target_seconds=300, recovery_point=point,
        passed=True, trend=trend(9.0, [_record(2.0, days_ago=d) for d in (1, 2, 3)]),
        record_key=f"sessions/drills/{current.id}.json", history=[current, _record(2.0)],
        unreadable=["sessions/drills/x.json: unreadable (id: Field required)"],
    )  # fmt: skip
    text = markdown(outcome, None)
    first = text.splitlines()[0]
    assert first.startswith("**Drill of sessions PASSED") and "RTO 9.0 s" in first and "1 key(s) lost" in first
    assert "(flagged: RTO regression)" in first
    assert "Flagged: RTO regression." in text
    assert f"| {NOW:%Y-%m-%d %H:%M} (this drill) | 20261120T000000Z | 9.0 s | 30 min 0 s | 3 | pass | REGRESSION |" in text
    assert "| pass | — |" in text  # an earlier, unflagged drill
    assert "x.json: unreadable" in text
    assert "| **RTO (kill to verified)** | **9.00** |" in text


def test_a_failed_drills_report_says_so_first() -> None:
    outcome = DrillOutcome(tag="t", instance="sessions", target="x", strategy="file", rto_target_seconds=300)
    text = markdown(outcome, None, error="drill of sessions FAILED at restore after the kill: boom")
    assert text.startswith("**Drill of sessions FAILED**: drill of sessions FAILED at restore")
    assert "no drill recorded" in text
