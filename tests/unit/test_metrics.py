"""A run's metrics as Prometheus reads them: names, labels, values, and what a failure leaves out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from redis_dr.metrics.model import (
    COMPAT_BACKUP_METRIC,
    GAUGES,
    LABELS,
    MetricGroup,
    Operation,
    RunMetrics,
    RunTimer,
    exposition,
    groups_of,
)
from redis_dr.metrics.publish import with_max_age
from redis_dr.metrics.targets import MetricsTargets

ENDED = datetime(2026, 11, 25, 3, 0, 0, tzinfo=UTC)
PRIMARY = "s3://backups/redis?region=eu-central-1"


def backup(succeeded: bool, **figures: object) -> RunMetrics:
    return RunMetrics.model_validate({
        "operation": Operation.BACKUP, "environment": "production", "instance": "sessions",
        "location": PRIMARY, "succeeded": succeeded, "finished_at": ENDED, "duration_seconds": 12.5,
        "primary": True, **figures,
    })  # fmt: skip


def samples(group: MetricGroup) -> dict[str, tuple[dict[str, str], float]]:
    """Parse the group's exposition back: name -> (labels, value), one sample each."""
    parsed = {}
    for family in text_string_to_metric_families(exposition(group.families).decode()):
        assert family.type == "gauge", family
        assert family.documentation, f"{family.name} has no HELP"
        (sample,) = family.samples
        parsed[family.name] = (sample.labels, sample.value)
    return parsed


def test_a_success_exposes_its_timestamps_size_keys_and_outcome() -> None:
    group, compat = groups_of([backup(True, size_bytes=310_500, key_count=2000)])
    found = samples(group)
    labels = {"operation": "backup", "environment": "production", "instance": "sessions", "location": PRIMARY}
    assert group.labels == labels
    assert {name: labels_ for name, (labels_, _) in found.items()} == dict.fromkeys(found, labels)
    assert {name: value for name, (_, value) in found.items()} == {
        "redis_dr_last_attempt_timestamp_seconds": ENDED.timestamp(),
        "redis_dr_last_success_timestamp_seconds": ENDED.timestamp(),
        "redis_dr_last_duration_seconds": 12.5,
        "redis_dr_last_run_success": 1.0,
        "redis_dr_last_success_size_bytes": 310_500,
        "redis_dr_last_success_keys": 2000,
    }
    assert samples(compat) == {
        COMPAT_BACKUP_METRIC: ({"environment": "production", "instance": "sessions"}, ENDED.timestamp())
    }


def test_a_failure_sends_its_attempt_but_no_success_gauge() -> None:
    (group,) = groups_of([backup(False, size_bytes=1, key_count=1)])
    found = samples(group)
    assert set(found) == {
        "redis_dr_last_attempt_timestamp_seconds",
        "redis_dr_last_failure_timestamp_seconds",
        "redis_dr_last_duration_seconds",
        "redis_dr_last_run_success",
    }
    assert found["redis_dr_last_run_success"][1] == 0.0
    assert found["redis_dr_last_failure_timestamp_seconds"][1] == ENDED.timestamp()


def test_the_runbook_gauge_comes_only_from_an_rdb_backup_committed_in_its_primary() -> None:
    copy = backup(True).model_copy(update={"primary": False, "location": "gs://dr/redis"})
    aof = backup(True).model_copy(update={"operation": Operation.AOF_BACKUP})
    assert len(groups_of([copy])) == 1
    assert len(groups_of([aof])) == 1
    assert len(groups_of([backup(True)])) == 2


def test_measured_figures_are_sent_whatever_the_outcome() -> None:
    drill = RunMetrics(
        operation=Operation.DRILL, environment="staging", instance="sessions", succeeded=False,
        finished_at=ENDED, duration_seconds=400.0, rto_seconds=390.0, rpo_seconds=1800.0,
        rto_target_seconds=300.0, lost_keys=12,
    )  # fmt: skip
    (group,) = groups_of([drill])
    found = samples(group)
    assert found["redis_dr_drill_rto_seconds"][1] == 390.0
    assert found["redis_dr_drill_rto_target_seconds"][1] == 300.0
    assert found["redis_dr_drill_rpo_seconds"][1] == 1800.0
    assert found["redis_dr_drill_lost_keys"][1] == 12
    assert found["redis_dr_drill_rto_seconds"][0]["location"] == ""
    assert "redis_dr_last_success_timestamp_seconds" not in found


def test_an_unknown_environment_is_an_empty_label() -> None:
    run = backup(True).model_copy(update={"environment": None})
    assert groups_of([run])[0].labels["environment"] == ""


def test_every_name_follows_prometheus_conventions() -> None:
    for gauge in GAUGES:
        assert gauge.name.startswith("redis_dr_"), gauge.name
        assert gauge.name == gauge.name.lower()
        assert not gauge.name.endswith(("_total", "_ms", "_milliseconds", "_minutes", "_hours", "_kb")), (
            gauge.name
        )
        if "timestamp" in gauge.name:
            assert gauge.name.endswith("_timestamp_seconds"), gauge.name
    assert len({gauge.name for gauge in GAUGES}) == len(GAUGES)
    assert LABELS == ("operation", "environment", "instance", "location")


def test_max_age_of_the_targets_is_sent_with_every_attempt() -> None:
    runs = with_max_age([backup(False)], MetricsTargets(max_age="2h"))
    found = samples(groups_of(runs)[0])
    assert found["redis_dr_max_age_seconds"][1] == 7200.0
    assert with_max_age([backup(False)], MetricsTargets()) == [backup(False)]


def test_group_file_names_differ_per_location_and_are_safe() -> None:
    first, compat = groups_of([backup(True)])
    other = groups_of([backup(True).model_copy(update={"location": PRIMARY + "x", "primary": False})])[0]
    assert first.file_stem != other.file_stem
    assert compat.file_stem not in (first.file_stem, other.file_stem)
    for stem in (first.file_stem, other.file_stem, compat.file_stem):
        assert "/" not in stem and "?" not in stem and ":" not in stem, stem


def test_the_timer_gives_the_run_its_end_and_duration() -> None:
    run = RunTimer().metrics(Operation.VALIDATE, "staging", "sessions", "file:///b", succeeded=True,
                             checked_backups=3, failed_backups=0)  # fmt: skip
    assert run.duration_seconds >= 0
    assert abs((datetime.now(UTC) - run.finished_at).total_seconds()) < 60
    assert samples(groups_of([run])[0])["redis_dr_validation_checked_backups"][1] == 3


def test_negative_figures_are_refused() -> None:
    with pytest.raises(ValidationError):
        backup(True, size_bytes=-1)


def test_run_metrics_pass_through_prefect_as_task_parameters() -> None:
    """Prefect walks a task's parameters and takes a model with a `keys` attribute for a mapping
    (a field named `keys` made every publish-metrics task fail: 'NoneType' object is not callable)."""
    from prefect.utilities.collections import visit_collection

    run = backup(True, size_bytes=1, key_count=2)
    seen: list[object] = []
    visit_collection([run], visit_fn=seen.append, return_data=False)
    assert run in seen


def test_a_key_count_given_as_keys_is_taken() -> None:
    run = RunTimer().metrics(Operation.RESTORE_TEST, "staging", "sessions", succeeded=True, keys=5)
    assert run.key_count == 5
    assert not hasattr(run, "keys")
