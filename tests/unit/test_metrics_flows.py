"""What each flow reports per location, from what its run learned (no Prefect run needed)."""

from __future__ import annotations

from redis_dr.config import build_request
from redis_dr.metrics.model import Operation, RunTimer
from redis_dr.prune import LocationOutcome, PruneOutcome, PruneRequest, PruneResult
from redis_dr.replicate import DestinationResult, ReplicateRequest, ReplicateResult
from redis_dr.validate import BackupCheck, ValidateRequest
from tests.manifests import manifest_for

PRIMARY = "file:///var/backups/redis"
COPY = "file:///mnt/dr/redis"


def test_backup_reports_each_location_and_a_failed_copy_as_failed_there() -> None:
    from flows.backup import backup_metrics
    from flows.backup_report import BackupRun

    request = build_request(
        instance="sessions",
        environment="staging",
        redis_url="redis://127.0.0.1:6379/0",
        storage=[PRIMARY, COPY],
    )
    run = BackupRun(request)
    run.manifest = manifest_for("20261125T030000Z", b"rdb", instance="sessions")
    run.locations[0].outcome = "committed 20261125T030000Z"
    run.locations[1].outcome, run.locations[1].failed = "FAILED: disk full", True
    primary, copy = backup_metrics(run, RunTimer())
    assert (primary.operation, primary.location, primary.succeeded, primary.primary) == (
        Operation.BACKUP, PRIMARY, True, True
    )  # fmt: skip
    assert (primary.size_bytes, primary.key_count) == (3, 1)
    assert (copy.location, copy.succeeded, copy.primary, copy.size_bytes) == (COPY, False, False, None)


def test_a_backup_that_failed_before_committing_fails_every_location() -> None:
    from flows.backup import backup_metrics
    from flows.backup_report import BackupRun

    request = build_request(
        instance="sessions", redis_url="redis://127.0.0.1:6379/0", storage=[PRIMARY, COPY], kind="rdb"
    )
    metrics = backup_metrics(BackupRun(request), RunTimer())
    assert [(m.location, m.succeeded, m.environment) for m in metrics] == [
        (PRIMARY, False, None),
        (COPY, False, None),
    ]


def test_prune_reports_applied_runs_only_with_what_each_location_removed() -> None:
    from flows.prune import prune_metrics

    policy = {"keep_last": 3}
    locations = [{"url": PRIMARY, "policy": policy}, {"url": COPY, "policy": policy}]
    outcome = PruneOutcome(
        instance="sessions",
        applied=True,
        locations=[
            LocationOutcome(
                url=PRIMARY, policy="last 3", result=PruneResult(location=PRIMARY, removed=["a", "b"])
            ),
            LocationOutcome(url=COPY, policy="last 3", error="unreachable"),
        ],
    )
    applied = PruneRequest.model_validate({"instance": "sessions", "locations": locations, "apply": True})
    first, second = prune_metrics(applied, outcome, RunTimer())
    assert (first.succeeded, first.removed_backups, second.succeeded, second.removed_backups) == (
        True,
        2,
        False,
        None,
    )
    dry = PruneRequest.model_validate({"instance": "sessions", "locations": locations, "apply": False})
    assert prune_metrics(dry, outcome, RunTimer()) == []


def test_replicate_reports_the_lag_per_destination_and_fails_one_over_its_limit() -> None:
    from flows.replicate import replicate_metrics

    request = ReplicateRequest.model_validate(
        {
            "instance": "sessions",
            "source": PRIMARY,
            "destinations": [COPY, "file:///mnt/far/redis"],
            "max_lag": "1h",
        }
    )
    result = ReplicateResult(
        instance="sessions",
        source=PRIMARY,
        source_backups=4,
        destinations=[
            DestinationResult(url=COPY, lag_after_seconds=60),
            DestinationResult(url="file:///mnt/far/redis", lag_after_seconds=7200),
        ],
    )
    near, far = replicate_metrics(request, result, RunTimer())
    assert (near.location, near.succeeded, near.lag_seconds, near.max_lag_seconds) == (COPY, True, 60, 3600)
    assert (far.succeeded, far.lag_seconds) == (False, 7200)
    not_started = replicate_metrics(request, None, RunTimer())
    assert [(m.succeeded, m.lag_seconds) for m in not_started] == [(False, None), (False, None)]


def test_validate_reports_each_location_with_its_checked_and_failed_backups() -> None:
    from flows.validate import validate_metrics

    request = ValidateRequest(instance="sessions", storage=[PRIMARY, COPY])
    checks = [
        BackupCheck(backup_id="a", location=PRIMARY, ok=True),
        BackupCheck(backup_id="b", location=PRIMARY, ok=True),
        BackupCheck(backup_id="a", location=COPY, ok=False, problems=["sha256 differs"]),
    ]
    good, bad = validate_metrics(request, checks, RunTimer())
    assert (good.succeeded, good.checked_backups, good.failed_backups) == (True, 2, 0)
    assert (bad.succeeded, bad.checked_backups, bad.failed_backups) == (False, 1, 1)
    assert [m.succeeded for m in validate_metrics(request, None, RunTimer())] == [False, False]


def test_restore_reports_the_instance_with_the_keys_it_verified() -> None:
    from flows.restore import restore_metrics
    from flows.restore_report import RestoreOutcome, RestoreRun
    from redis_dr.restore.request import build_restore_request
    from redis_dr.restore.verify import VerifyReport

    request = build_restore_request(
        instance="sessions", environment="staging", storage=PRIMARY, target="local:///etc/redis.conf"
    )
    run = RestoreRun(request, tag="T")
    failed = restore_metrics(run, RunTimer(), None)
    assert (failed.operation, failed.location, failed.succeeded, failed.key_count) == (
        Operation.RESTORE, "", False, None
    )  # fmt: skip
    outcome = RestoreOutcome(
        tag="T", instance="sessions", backup_id="20261125T030000Z", strategy="file", target="local",
        recovery_seconds=4.0, verification=VerifyReport(keys_loaded=1234),
    )  # fmt: skip
    done = restore_metrics(run, RunTimer(), outcome)
    assert (done.succeeded, done.key_count, done.environment) == (True, 1234, "staging")
