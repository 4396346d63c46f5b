"""Hostile input against the issue-8 work (retention, durations, environment files, prune plans):
each bad value is one clear ConfigError naming it, never an unexpected exception."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.utilities.collections import visit_collection
from pydantic import ValidationError

from cli.main import main
from redis_dr.durations import parse_duration
from redis_dr.environment import load_environment
from redis_dr.errors import AccessDeniedError, ConfigError
from redis_dr.host_lease import host_lease
from redis_dr.prune import Orphan, PrunePlan
from redis_dr.retention import RetentionPolicy, decide
from tests.fixtures.unprivileged import as_nobody
from tests.manifests import manifest_for

VALID_ENVIRONMENT = "environment: x\ninstances:\n  s:\n    storage: file:///tmp/hostile-unused\n"


@pytest.mark.parametrize("text", ["99999999999999999999d", "9999999999999d", "36501d", "1" * 5000 + "s"])
def test_a_huge_duration_is_refused_in_one_line_not_an_overflow(text: str) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


def test_the_longest_duration_accepted_still_works_in_a_retention_decision() -> None:
    manifests = [manifest_for(f"2026011{day}T120000Z", b"x", instance="s") for day in range(3)]
    policy = RetentionPolicy(keep_within=parse_duration("36500d"))
    assert all(decision.keep for decision in decide(manifests, policy, datetime.now(UTC)))


def test_a_huge_keep_within_in_a_policy_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="too long"):
        RetentionPolicy.model_validate({"keep_within": "999999d"})


@pytest.mark.parametrize("text", ["0d", "0s", "0w0d"])
def test_a_zero_keep_within_is_refused_it_would_keep_nothing(text: str) -> None:
    with pytest.raises(ValidationError, match="positive duration"):
        RetentionPolicy.model_validate({"keep_within": text})


def test_a_binary_environment_file_is_one_config_error(tmp_path: Path) -> None:
    file = tmp_path / "env.yaml"
    file.write_bytes(b"\xff\xfe\x00\x82junk")
    with pytest.raises(ConfigError, match="is not text"):
        load_environment(file)


def test_an_environment_file_without_instances_is_refused(tmp_path: Path) -> None:
    """An empty instances mapping would make `deploy` remove every deployment of the environment."""
    file = tmp_path / "env.yaml"
    file.write_text("environment: production\ninstances: {}\n")
    with pytest.raises(ConfigError, match="instances"):
        load_environment(file)


def test_an_unreadable_environment_file_is_access_denied(shared_dir: Path) -> None:
    file = shared_dir / "env.yaml"
    file.write_text(VALID_ENVIRONMENT)
    os.chmod(file, 0o600)
    answer = as_nobody(lambda: load_environment(file))
    assert answer.get("error") == AccessDeniedError.__name__, answer
    assert "permission denied" in str(answer["message"])


def test_a_plan_with_orphans_survives_prefects_walk_of_task_results() -> None:
    """Prefect walks a task's result and parameters with dict(model): a field named `keys` broke it."""
    orphan = Orphan(
        backup_id="20260110T120000Z", object_keys=["s/20260110T120000Z/dump.rdb"], last_written=None
    )
    plan = PrunePlan(
        location="file:///tmp/x",
        instance="s",
        policy=RetentionPolicy(keep_last=1),
        planned_at=datetime.now(UTC),
        orphan_grace=timedelta(days=1),
        decisions=[],
        orphans=[orphan],
        in_progress=[orphan],
        stale_uploads=[],
    )
    walked = visit_collection(plan, visit_fn=lambda item: item, return_data=True)
    assert walked == plan


@pytest.mark.parametrize("command", ["prune", "replicate"])
def test_a_second_storage_flag_is_refused_not_silently_kept_instead_of_the_first(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse kept the last --storage: `prune --storage A --storage B --apply` pruned only B."""
    args = [
        command,
        "--instance",
        "s",
        "--storage",
        "file:///tmp/hostile-x",
        "--storage",
        "file:///tmp/hostile-y",
    ]
    args += ["--keep-last", "1"] if command == "prune" else ["--to", "file:///tmp/hostile-z"]
    assert main(args) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert (
        err.strip() == "redis-dr: error: --storage given twice: this command takes one (run it once for each)"
    )


def test_a_prune_of_an_instance_without_any_retention_says_so(tmp_path: Path) -> None:
    """It used to be 'invalid locations: List should have at least 1 item after validation, not 0'."""
    file = tmp_path / "env.yaml"
    file.write_text(VALID_ENVIRONMENT)
    with pytest.raises(ConfigError, match="^no location of s in x has a retention policy: nothing to prune"):
        load_environment(file).prune_request("s")


def test_a_lease_whose_lock_directory_cannot_be_made_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was 'unexpected FileNotFoundError' (or NotADirectoryError) out of the flow."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("REDIS_DR_STATE_DIR", str(blocker / "state"))
    lease = host_lease("redis-dr-adhoc-s", "a run", 1, print)
    with pytest.raises(ConfigError, match="needs a lock file in .*REDIS_DR_STATE_DIR"), lease:
        pass


@pytest.mark.parametrize("sample", ["-1", "1000"])
def test_a_sample_out_of_range_names_the_flag(sample: str, capsys: pytest.CaptureFixture[str]) -> None:
    """It said 'invalid sample: Input should be greater than or equal to 0'."""
    args = ["validate", "--instance", "s", "--storage", "file:///tmp/hostile-x", "--sample", sample]
    assert main(args) == ConfigError.exit_code
    expected = f"redis-dr: error: --sample {sample}: give 0 to 100 (older backups validated at random)"
    assert capsys.readouterr().err.strip() == expected


@pytest.mark.parametrize("tag", ["env:production", "instance:production/sessions", "redis-dr"])
def test_a_tag_redis_dr_finds_deployments_by_is_reserved(tag: str, tmp_path: Path) -> None:
    """A staging file tagged env:production had its deployments deleted by deploying production."""
    file = tmp_path / "env.yaml"
    file.write_text(VALID_ENVIRONMENT + f"prefect: {{tags: ['{tag}']}}\n")
    with pytest.raises(ConfigError, match=f"tag '{tag}' is reserved"):
        load_environment(file)


def test_a_nul_byte_in_a_file_url_is_refused_in_one_line() -> None:
    from redis_dr.storage.location import StorageLocation

    with pytest.raises(ConfigError, match="holds a NUL byte"):
        StorageLocation.parse("file:///tmp/x%00y")


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary", None], ids=["binary", "directory"])
def test_an_age_identity_file_that_cannot_be_read_as_a_key_is_one_line(tmp_path: Path, content: bytes | None) -> None:
    from redis_dr.fetch import identities_from_env

    path = tmp_path / "key"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match="is neither an age key nor a readable key file"):
        identities_from_env({"REDIS_DR_AGE_IDENTITY": str(path)})
