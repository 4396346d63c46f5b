"""`redis-dr restore` as an on-call engineer runs it: from an environment file, into a compose service."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from redis_dr.sandbox.redis_server import RedisServer
from tests.fixtures.targets import TargetServer
from tests.integration.cli import backup_with_cli, run_cli
from tests.integration.datasets import assert_holds, fill_every_type, read_dataset

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]
Factory = Callable[..., TargetServer]


@pytest.fixture
def source(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    server = redis_factory()
    fill_every_type(server.client())
    return server


def test_restore_from_an_environment_file_names_its_target(
    source: RedisServer, local_target_factory: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    backup_id = backup_with_cli(capsys, source.url, storage)
    target = local_target_factory()
    env_file = tmp_path / "production.yaml"
    env_file.write_text(yaml.safe_dump({
        "environment": "production",
        "protected": True,
        "instances": {"sessions": {"redis_url": source.url, "storage": [storage], "target": target.platform.target}},
    }))  # fmt: skip

    code, out, err = run_cli(capsys, "restore", "--env-file", str(env_file), "--instance", "sessions", "--json")
    assert code == 6, err  # protected, no terminal, no --yes: refused after showing the plan
    assert "restore plan" in err and target.client().dbsize() == 0

    code, out, err = run_cli(capsys, "restore", "--env-file", str(env_file), "--instance", "sessions", "--yes",
                             "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["backup_id"] == backup_id
    assert_holds(read_dataset(source.client()), target.client())


def test_restore_into_a_compose_service_found_by_its_labels(
    source: RedisServer, docker_target_factory: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    backup_with_cli(capsys, source.url, storage)
    target = docker_target_factory(compose=("shop", "redis"))
    target.client().set("old", "x")

    code, _, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                           "--target", "compose://shop/redis", "--yes")  # fmt: skip

    assert code == 0, err
    assert_holds(read_dataset(source.client()), target.client())
    placed = target.platform.stat("dump.rdb")
    assert placed is not None and placed.uid == 999  # the official image's redis user, no chown needed


def test_the_plan_names_what_earlier_restores_left_in_the_data_directory(
    source: RedisServer, local_target_factory: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"file://{tmp_path / 'backups'}"
    backup_with_cli(capsys, source.url, storage)
    target = local_target_factory({"save": "3600 1"})
    target.client().save()  # a dump.rdb for the first restore to move aside
    args = ["restore", "--storage", storage, "--instance", "sessions", "--target", target.platform.target,
            "--no-checkpoint"]  # fmt: skip
    code, out, err = run_cli(capsys, *args, "--yes", "--json")
    assert code == 0, err
    first_tag = json.loads(out)["tag"]
    staging = Path(target.platform.layout().dir) / ".redis-dr" / "staging-20250101T000000-000Z"
    staging.mkdir()  # as a restore killed while staging leaves it

    code, _, err = run_cli(capsys, *args)  # no --yes, no terminal: the plan only

    assert code == 6
    line = next(line for line in err.splitlines() if "earlier restores:" in line)
    assert line.lstrip().startswith("WARN")
    assert f"aside-{first_tag}" in line and "kept the data they replaced" in line
    assert "staging-20250101T000000-000Z" in line and "safe to remove" in line
