"""The shipped environment files encode the runbooks, and the deployments follow from them alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from redis_dr.automation_plan import automation_specs
from redis_dr.deployment_plan import DeploymentSpec, deployment_specs, left_out
from redis_dr.durations import parse_duration
from redis_dr.environment import load_environment
from redis_dr.errors import ConfigError
from redis_dr.run_tags import lease_name

DEPLOYMENTS = Path(__file__).resolve().parents[2] / "deployments"


def by_name(specs: list[DeploymentSpec]) -> dict[str, DeploymentSpec]:
    return {spec.full_name: spec for spec in specs}


def crons(spec: DeploymentSpec) -> list[tuple[str, str]]:
    return [(schedule.cron, schedule.timezone) for schedule in spec.schedules]


def test_production_backs_up_hourly_keeps_the_runbooks_generations_and_copies_twice() -> None:
    production = load_environment(DEPLOYMENTS / "production.yaml")
    specs = by_name(deployment_specs(production))

    assert sorted(specs) == [
        "redis-backup/production-sessions",
        "redis-backup/production-sessions-aof",
        "redis-prune/production-sessions",
        "redis-replicate/production-sessions",
        "redis-restore-test/production-sessions",
        "redis-restore/production-sessions",
        "redis-validate/production-sessions",
    ]
    assert crons(specs["redis-backup/production-sessions"]) == [("0 * * * *", "Europe/Berlin")]
    assert crons(specs["redis-backup/production-sessions-aof"]) == [("0 2 * * *", "Europe/Berlin")]
    assert crons(specs["redis-validate/production-sessions"]) == [("0 3 * * *", "Europe/Berlin")]
    assert crons(specs["redis-restore-test/production-sessions"]) == [("0 4 1 * *", "Europe/Berlin")]
    restore_test = specs["redis-restore-test/production-sessions"].parameters["request"]
    assert restore_test["backup"] == "7d-ago" and restore_test["source_target"] == "compose://sessions/redis"
    assert crons(specs["redis-restore/production-sessions"]) == []  # on demand only
    backup = specs["redis-backup/production-sessions"].parameters["request"]
    assert backup["environment"] == "production" and len(backup["storage"]) == 3
    assert backup["storage"][1].startswith("s3://sva-backups-eu-west-1/") and backup["storage"][2].startswith(
        "gs://"
    )
    assert specs["redis-backup/production-sessions-aof"].parameters["request"]["kind"] == "aof"
    # Each location is pruned with its own policy: the primary keeps 24 hourly, 7 daily, 4 weekly, 12 monthly.
    prune = specs["redis-prune/production-sessions"]
    policies = [location["policy"] for location in prune.parameters["request"]["locations"]]
    assert policies[0] == {"keep_hourly": 24, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}
    assert policies[2] == {"keep_monthly": 12}
    # A person's run of prune is a dry run; the schedule's runs apply.
    assert "apply" not in prune.parameters["request"]
    assert prune.schedules[0].parameters["request"]["apply"] is True
    assert prune.schedules[0].parameters["request"]["locations"] == prune.parameters["request"]["locations"]
    replicate = specs["redis-replicate/production-sessions"].parameters["request"]
    assert replicate["max_lag"] == "2h" and len(replicate["destinations"]) == 2
    # Restores need approval, pinned by the deployments' tag as well as by the form's field.
    restore = specs["redis-restore/production-sessions"]
    assert restore.parameters["request"]["protected"] is True and "protected" in restore.tags
    for spec in specs.values():
        assert spec.work_pool == "redis-dr-production"
        assert {"redis-dr", "env:production", "instance:production/sessions"} <= set(spec.tags)


def test_staging_backs_up_every_six_hours_and_keeps_thirty_days() -> None:
    staging = load_environment(DEPLOYMENTS / "staging.yaml")
    specs = by_name(deployment_specs(staging))

    assert crons(specs["redis-backup/staging-sessions"]) == [("0 */6 * * *", "Europe/Berlin")]
    [location] = specs["redis-prune/staging-sessions"].parameters["request"]["locations"]
    assert location["policy"]["keep_within"] == "30d"
    assert staging.retention is not None and staging.retention.keep_within == timedelta(days=30)
    assert "redis-replicate/staging-sessions" not in specs  # one location: nothing to copy to
    assert not staging.protected and "protected" not in specs["redis-restore/staging-sessions"].tags
    assert "protected" not in specs["redis-restore/staging-sessions"].parameters["request"]
    assert crons(specs["redis-drill/staging-sessions"]) == [("0 5 1 * *", "Europe/Berlin")]
    drill = specs["redis-drill/staging-sessions"].parameters["request"]
    assert drill["target"] == "compose://sessions-staging/redis" and drill["environment"] == "staging"
    assert staging.drill_request("sessions").rto_target == timedelta(minutes=5)


def test_every_flow_of_an_instance_shares_one_lease() -> None:
    production = load_environment(DEPLOYMENTS / "production.yaml")
    leases = {lease_name(spec.environment, spec.instance) for spec in deployment_specs(production)}
    assert leases == {"redis-dr-production-sessions"}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


MINIMAL = {
    "environment": "qa",
    "instances": {"sessions": {"redis_url": "redis://h:1/0", "storage": "file:///b"}},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schedules": {"backup": "every hour"}}, "schedule 'every hour' is not a cron line of 5 fields"),
        ({"schedules": {"backup": "61 * * * *"}}, "schedule '61 \\* \\* \\* \\*' is not a valid cron line"),
        ({"schedules": {"bakup": "0 * * * *"}}, "schedules.bakup"),
        ({"prefect": {"timezone": "Mars/Olympus"}}, "time zone 'Mars/Olympus' is unknown"),
        ({"prefect": {"work_pool": "my pool"}}, "work pool name 'my pool' is not allowed"),
        ({"retention": {"keep_daily": 0}}, "retention.keep_daily"),
        ({"retention": {"keep_within": "a month"}}, "retention.keep_within"),
        ({"replication": {"max_lag": "2 hours"}}, "replication.max_lag"),
        ({"protected": True, "drills": True}, "a protected environment cannot allow them"),
        ({"schedules": {"drill": "0 5 1 * *"}}, "drills are not allowed: add 'drills: true'"),
        ({"drills": {"rto_target": "five minutes"}}, "drills.rto_target"),
        ({"metrics": {"pushgateway": "http://u:p@h:9091"}}, "the pushgateway URL holds credentials"),
        ({"metrics": {"textfile_dir": "relative/dir"}}, "give an absolute path"),
        ({"notifications": {"block": "https://hooks.example/x"}}, "write <block-type>/<name>"),
        ({"restore_test": {"backup": "last week"}}, "is neither 'latest'"),
    ],
)
def test_a_bad_setting_is_refused_in_one_line_naming_it(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_environment(write(tmp_path, {**MINIMAL, **change}))
    assert "\n" not in str(caught.value)


def test_a_location_named_twice_is_refused(tmp_path: Path) -> None:
    data = {"environment": "qa", "instances": {"sessions": {
        "redis_url": "redis://h:1/0", "storage": ["s3://bkt/p?region=x", {"url": "s3://bkt/p/?region=x"}]}}}  # fmt: skip
    with pytest.raises(ConfigError, match="are the same place"):
        load_environment(write(tmp_path, data))


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="is not a mapping of settings"):
        load_environment(path)


def test_only_locations_with_a_policy_are_pruned_and_a_named_one_without_is_refused(tmp_path: Path) -> None:
    data = {"environment": "qa", "instances": {"sessions": {"redis_url": "redis://h:1/0", "storage": [
        "file:///a", {"url": "file:///b", "retention": {"keep_last": 2}}]}}}  # fmt: skip
    environment = load_environment(write(tmp_path, data))

    request = environment.prune_request("sessions")
    assert [location.url for location in request.locations] == ["file:///b"]
    assert environment.prune_request("sessions", storage="file:///b/").locations[0].policy.keep_last == 2
    with pytest.raises(ConfigError, match="file:///a has no retention policy"):
        environment.prune_request("sessions", storage="file:///a")
    with pytest.raises(ConfigError, match="file:///c is not a location of sessions"):
        environment.prune_request("sessions", storage="file:///c")


def test_what_a_schedule_cannot_apply_to_is_said(tmp_path: Path) -> None:
    data = {
        **MINIMAL,
        "schedules": {"prune": "0 * * * *", "replicate": "0 * * * *", "aof_backup": "0 2 * * *"},
    }
    environment = load_environment(write(tmp_path, data))
    assert left_out(environment) == [
        "sessions is not pruned: none of its locations has a retention policy",
        "sessions is not replicated: it has one location",
        "sessions has no AOF backup: its target gives no access to its files",
    ]
    assert left_out(load_environment(DEPLOYMENTS / "production.yaml")) == []


def test_every_deployment_reports_metrics_and_a_scheduled_one_is_overdue_when_its_automation_says() -> None:
    production = load_environment(DEPLOYMENTS / "production.yaml")
    specs = by_name(deployment_specs(production))
    overdue = {spec.name: spec.within for spec in automation_specs(production) if spec.within is not None}

    for spec in specs.values():
        assert spec.parameters["metrics"]["pushgateway"] == "http://pushgateway.monitoring:9091"
    assert "max_age" not in specs["redis-restore/production-sessions"].parameters["metrics"]  # on demand
    backup = specs["redis-backup/production-sessions"].parameters["metrics"]
    assert backup["max_age"] == "1h15m"  # hourly, plus the margin
    assert parse_duration(backup["max_age"]) in overdue.values()
    assert specs["redis-restore-test/production-sessions"].parameters["metrics"]["max_age"] == "31d2h"
