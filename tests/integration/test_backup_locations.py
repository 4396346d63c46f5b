"""`redis-dr backup` with several --storage locations: every one written, or named in the failure."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.redis_server import RedisServer
from tests.fixtures.storage_servers import TEST_BUCKET
from tests.integration.cli import assert_one_clear_error, run_cli
from tests.servers.fakegcs import FakeGCS
from tests.servers.seaweedfs import SeaweedFS

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def fetched(capsys: pytest.CaptureFixture[str], storage: str, backup_id: str, output: Path) -> bytes:
    code, _, err = run_cli(
        capsys, "fetch", "--storage", storage, "--instance", "sessions", "--backup", backup_id,
        "--output", str(output),
    )  # fmt: skip
    assert code == 0, err
    return output.read_bytes()


def test_every_location_holds_the_same_backup(
    capsys: pytest.CaptureFixture[str],
    redis_server: RedisServer,
    seaweedfs: SeaweedFS,
    fake_gcs: FakeGCS,
    tmp_path: Path,
) -> None:
    redis_server.client().mset({f"session:{n}": "x" * n for n in range(300)})
    unique = uuid.uuid4().hex
    locations = [
        f"file://{tmp_path / 'primary'}",
        f"s3://{TEST_BUCKET}/{unique}?endpoint={seaweedfs.endpoint}&region=us-east-1",
        f"gs://{TEST_BUCKET}/{unique}?endpoint={fake_gcs.endpoint}",
    ]
    storage_args = [arg for url in locations for arg in ("--storage", url)]

    code, out, err = run_cli(
        capsys, "backup", "--redis-url", redis_server.url, "--instance", "sessions", *storage_args
    )

    assert code == 0, err
    backup_id = out.strip()
    assert "then a verified copy to " + ", ".join(locations[1:]) in err
    for url in locations[1:]:
        assert f"copied backup {backup_id} to {url}" in err
    rdbs = [fetched(capsys, url, backup_id, tmp_path / f"fetched-{n}.rdb") for n, url in enumerate(locations)]
    assert rdbs[0] == rdbs[1] == rdbs[2]


def test_a_failed_copy_fails_the_command_and_keeps_the_primary(
    capsys: pytest.CaptureFixture[str], redis_server: RedisServer, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    redis_server.client().set("session:1", "x")
    primary = f"file://{tmp_path / 'primary'}"
    # Credentials are there (the seaweedfs fixture exports them); nothing listens on the endpoint.
    nowhere = f"s3://{TEST_BUCKET}/x?endpoint=http://127.0.0.1:{free_port()}&region=us-east-1"

    code, out, err = run_cli(
        capsys, "backup", "--redis-url", redis_server.url, "--instance", "sessions",
        "--storage", primary, "--storage", nowhere,
    )  # fmt: skip

    assert code == 75, err  # the copy's own cause: unreachable, retried, still unreachable
    assert out == ""
    assert_one_clear_error(err, nowhere.split("?")[0], "committed in " + primary)
    code, listed, _ = run_cli(capsys, "list", "--storage", primary, "--instance", "sessions", "--json")
    assert code == 0 and '"id"' in listed
    assert listed.count('"id"') == 1


def test_fetch_passes_over_a_location_that_lost_its_backups_and_says_so(
    capsys: pytest.CaptureFixture[str], redis_server: RedisServer, tmp_path: Path
) -> None:
    """The primary region is gone: its copy must still be found, and the person told where."""
    redis_server.client().set("session:1", "x")
    gone, copy = f"file://{tmp_path / 'gone'}", f"file://{tmp_path / 'copy'}"
    code, out, err = run_cli(
        capsys, "backup", "--redis-url", redis_server.url, "--instance", "sessions", "--storage", copy
    )
    assert code == 0, err

    code, fetched_path, err = run_cli(
        capsys, "fetch", "--instance", "sessions", "--storage", gone, "--storage", copy,
        "--output", str(tmp_path / "restored.rdb"),
    )  # fmt: skip

    assert code == 0, err
    assert f"location 1 of 2 ({gone}): no backups" in err and "trying the next one" in err
    assert f"fetching backup {out.strip()} of sessions" in err and f"from {copy}" in err
    assert Path(fetched_path.strip()).read_bytes().startswith(b"REDIS")


def test_list_reads_one_location_and_says_which(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    first, second = f"file://{tmp_path / 'a'}", f"file://{tmp_path / 'b'}"
    code, _, err = run_cli(capsys, "list", "--instance", "sessions", "--storage", first, "--storage", second)
    assert code == 2
    assert_one_clear_error(err, "give a single --storage URL")

    env_file = tmp_path / "env.yaml"
    env_file.write_text(
        "environment: staging\ninstances:\n  sessions:\n    redis_url: redis://127.0.0.1:6379/0\n"
        f"    storage: [{first}, {second}]\n"
    )
    code, _, err = run_cli(capsys, "list", "--instance", "sessions", "--env-file", str(env_file))
    assert code == 0, err
    assert f"reading the primary location {first} (the others: {second}" in err


def test_a_run_that_gives_up_leaves_nothing_in_the_primary(
    capsys: pytest.CaptureFixture[str], redis_server: RedisServer, tmpfs_factory: Callable[[str], Path]
) -> None:
    """The primary's disk fills mid-snapshot: the run fails and removes all it stored there."""
    client = redis_server.client()
    client.mset({f"session:{n}": os.urandom(4096) for n in range(600)})  # ~2.4 MB that does not compress
    disk = tmpfs_factory("1m")
    code, out, err = run_cli(
        capsys, "backup", "--redis-url", redis_server.url, "--instance", "sessions",
        "--storage", f"file://{disk}",
    )  # fmt: skip
    assert code == 1 and out == ""
    assert_one_clear_error(err, "disk is full", str(disk))
    assert "removed the uncommitted data" in err
    assert sorted(p.name for p in disk.rglob("*")) == []


def test_a_lone_name_in_the_url_without_any_password_is_refused_unshown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """redis-cli reads redis://PASSWORD@host as a password: it must not be printed or stored."""
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    code, out, err = run_cli(
        capsys, "backup", "--redis-url", "redis://Zs3cretPW@127.0.0.1:1/0", "--instance", "sessions",
        "--storage", f"file://{tmp_path}",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert_one_clear_error(err, "no password is set", "REDIS_PASSWORD")
    assert "Zs3cretPW" not in err


def test_a_password_variable_that_is_not_set_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SESSIONS_REDIS_PASSWORD", raising=False)
    env_file = tmp_path / "env.yaml"
    env_file.write_text(
        "environment: staging\ninstances:\n  sessions:\n    redis_url: redis://127.0.0.1:1/0\n"
        f"    password: {{env: SESSIONS_REDIS_PASSWORD}}\n    storage: [file://{tmp_path / 'b'}]\n"
    )
    code, out, err = run_cli(capsys, "backup", "--instance", "sessions", "--env-file", str(env_file))
    assert code == 2 and out == ""
    assert_one_clear_error(err, "SESSIONS_REDIS_PASSWORD is not set")
    assert "Flow run" not in err  # refused before the flow (and a Prefect API) ran
