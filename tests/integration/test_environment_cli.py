"""The commands read an environment file as the deployments do: each location with its own policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from redis_dr.catalog import Catalog
from redis_dr.storage import open_storage
from tests.integration.cli import assert_one_clear_error, run_cli
from tests.integration.test_prune import store_backup

pytestmark = pytest.mark.integration

NEWEST = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DEPLOYMENTS = Path(__file__).resolve().parents[2] / "deployments"


def listed(url: str) -> list[str]:
    return [manifest.id for manifest in Catalog(open_storage(url), "sessions").list().manifests]


@pytest.mark.usefixtures("prefect_harness")  # the runs need an API; the session's is already up
def test_replicate_then_prune_each_location_with_its_own_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primary, second = f"file://{tmp_path / 'primary'}", f"file://{tmp_path / 'second'}"
    ids = [store_backup(open_storage(primary), NEWEST - timedelta(days=days)).id for days in range(3)]
    env_file = tmp_path / "env.yaml"
    env_file.write_text(yaml.safe_dump({
        "environment": "qa",
        "retention": {"keep_last": 1},
        "instances": {"sessions": {"redis_url": "redis://127.0.0.1:1/0", "storage": [
            primary, {"url": second, "retention": {"keep_last": 5}}]}},
    }))  # fmt: skip
    common = ["--env-file", str(env_file), "--instance", "sessions", "--json"]

    code, out, err = run_cli(capsys, "replicate", *common)
    assert code == 0, err
    assert sorted(json.loads(out)["destinations"][0]["copied"]) == sorted(ids)

    code, out, err = run_cli(capsys, "prune", *common, "--apply")
    assert code == 0, err
    rows = json.loads(out)
    assert {(row["location"], row["backup_id"], row["action"]) for row in rows} == {
        (primary, ids[0], "keep"), (primary, ids[1], "remove"), (primary, ids[2], "remove"),
        (second, ids[0], "keep"), (second, ids[1], "keep"), (second, ids[2], "keep"),
    }  # fmt: skip
    assert listed(primary) == ids[:1] and listed(second) == ids


def test_prune_refuses_rules_beside_an_environment_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_file = DEPLOYMENTS / "staging.yaml"
    code, _, err = run_cli(capsys, "prune", "--env-file", str(env_file), "--instance", "sessions", "--keep-last", "3")
    assert code == 2
    assert_one_clear_error(err, "--keep-last with --env-file: the environment file says each location's")


def test_deploy_shows_what_it_would_register_and_needs_a_server_to_register(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(capsys, "deploy", "--env-file", str(DEPLOYMENTS / "production.yaml"), "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.split()[:2] == ["redis-backup/production-sessions", "0"] and "(Europe/Berlin)" in line
               for line in lines), out  # fmt: skip
    assert any("redis-restore/production-sessions" in line and "on demand" in line for line in lines)

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        code, _, err = run_cli(capsys, "deploy", "--env-file", str(DEPLOYMENTS / "staging.yaml"))
    assert code == 2
    assert_one_clear_error(err, "deploy registers with a Prefect server: set PREFECT_API_URL")
