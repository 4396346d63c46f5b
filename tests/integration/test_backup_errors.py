"""Bad input gets one clear line and a non-zero exit, and a failed backup is never listed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyrage
import pytest
from prefect.settings import PREFECT_API_URL

from cli.demo_sessions import populate_session_store
from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.redis_server import RedisServer
from tests.integration.cli import assert_one_clear_error, run_cli, wait_until_snapshot_runs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def listed(capsys: pytest.CaptureFixture[str], storage: str, instance: str = "sessions") -> list[str]:
    code, out, err = run_cli(capsys, "list", "--storage", storage, "--instance", instance, "--json")
    assert code == 0, err
    return [m["id"] for m in json.loads(out)]


def backup_args(url: str, storage: str, *extra: str) -> list[str]:
    return ["backup", "--redis-url", url, "--storage", storage, "--instance", "sessions", *extra]


def test_wrong_password_is_refused_without_printing_it(
    redis_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = redis_factory(password="right-horse-battery")
    url = f"redis://:wrong-staple-42@127.0.0.1:{server.port}/0"
    code, out, err = run_cli(capsys, *backup_args(url, f"file://{tmp_path}"))
    assert code == 4
    assert_one_clear_error(err, "refused the password", "REDIS_PASSWORD")
    assert "wrong-staple-42" not in err + out
    assert listed(capsys, f"file://{tmp_path}") == []


def test_password_from_environment_works(
    redis_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = redis_factory(password="right-horse-battery")
    server.client().set("k", "v")
    monkeypatch.setenv("REDIS_PASSWORD", "right-horse-battery")
    code, out, err = run_cli(capsys, *backup_args(server.url, f"file://{tmp_path}"))
    assert code == 0, err
    assert listed(capsys, f"file://{tmp_path}") == [out.strip()]
    assert "right-horse-battery" not in err + out


def test_user_without_replication_rights_gets_the_acl_to_grant(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_server.client().execute_command("ACL", "SETUSER", "backup", "on", ">pw-backup", "+ping", "+info")
    url = f"redis://backup:pw-backup@127.0.0.1:{redis_server.port}/0"
    code, _, err = run_cli(capsys, *backup_args(url, f"file://{tmp_path}"))
    assert code == 4
    assert_one_clear_error(err, "+sync", "+replconf")
    assert listed(capsys, f"file://{tmp_path}") == []


def test_unreachable_server_is_retried_then_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    code, _, err = run_cli(capsys, *backup_args(url, f"file://{tmp_path}"))
    assert code == 75
    assert_one_clear_error(err, "cannot reach Redis", "127.0.0.1")


def test_managed_redis_without_sync_suggests_bgsave(
    redis_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = redis_factory({"rename-command": 'SYNC ""'})
    code, _, err = run_cli(capsys, *backup_args(server.url, f"file://{tmp_path}"))
    assert code != 0
    assert_one_clear_error(err, "bgsave")
    assert listed(capsys, f"file://{tmp_path}") == []


def test_failed_bgsave_says_the_server_refuses_writes(
    redis_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = redis_factory({"save": "3600 1", "enable-protected-configs": "local"})
    client = server.client()
    client.set("k", "v")
    doomed = tmp_path / "gone"
    doomed.mkdir()
    client.config_set("dir", str(doomed))
    doomed.rmdir()  # the BGSAVE child cannot create its temp file
    args = backup_args(server.url, f"file://{tmp_path / 'b'}", "--mode", "bgsave")
    code, _, err = run_cli(capsys, *args, "--dump-path", str(doomed / "dump.rdb"))
    assert code != 0
    assert_one_clear_error(err, "BGSAVE failed", "REFUSES WRITES")
    assert listed(capsys, f"file://{tmp_path / 'b'}") == []


def test_missing_bucket_is_named(
    redis_server: RedisServer, seaweedfs, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"s3://no-such-bucket-here/x?endpoint={seaweedfs.endpoint}&region=us-east-1"
    code, _, err = run_cli(capsys, *backup_args(redis_server.url, url))
    assert code == 3
    assert_one_clear_error(err, "no-such-bucket-here")


def test_unknown_backup_id_and_time_before_first_backup(
    redis_server: RedisServer, storage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_server.client().set("k", "v")
    assert run_cli(capsys, *backup_args(redis_server.url, storage_url))[0] == 0
    base = ["fetch", "--storage", storage_url, "--instance", "sessions", "--output", str(tmp_path / "o.rdb")]
    code, _, err = run_cli(capsys, *base, "--backup", "20200101T000000Z")
    assert code == 3
    assert_one_clear_error(err, "no backup 20200101T000000Z")
    code, _, err = run_cli(capsys, *base, "--backup", "20200101-000000")
    assert code == 3
    assert_one_clear_error(err, "at or before 20200101T000000Z")
    assert not (tmp_path / "o.rdb").exists()


def test_corrupted_object_is_refused_by_checksum(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate_session_store(redis_server.client(), sessions=300, seed=1)
    storage = f"file://{tmp_path / 'store'}"
    for compression in ("zstd", "none"):
        code, out, err = run_cli(
            capsys, *backup_args(redis_server.url, storage, "--compression", compression)
        )
        assert code == 0, err
        [data] = [
            p for p in (tmp_path / "store" / "sessions" / out.strip()).iterdir() if p.name.startswith("dump")
        ]
        blob = bytearray(data.read_bytes())
        blob[len(blob) // 2] ^= 0x40
        data.chmod(0o644)
        data.write_bytes(bytes(blob))
        output = tmp_path / f"{compression}.rdb"
        code, _, err = run_cli(
            capsys,
            "fetch",
            "--storage",
            storage,
            "--instance",
            "sessions",
            "--backup",
            out.strip(),
            "--output",
            str(output),
        )
        assert code == 5
        assert_one_clear_error(err, "corrupt")
        assert not output.exists()
        assert not list(tmp_path.glob(".*.partial"))


def test_wrong_or_missing_age_identity(
    redis_server: RedisServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis_server.client().set("k", "v")
    right, wrong = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    storage = f"file://{tmp_path / 'store'}"
    code, _, err = run_cli(
        capsys, *backup_args(redis_server.url, storage, "--encrypt-to", str(right.to_public()))
    )
    assert code == 0, err
    fetch = ["fetch", "--storage", storage, "--instance", "sessions", "--output", str(tmp_path / "o.rdb")]
    monkeypatch.delenv("REDIS_DR_AGE_IDENTITY", raising=False)
    code, _, err = run_cli(capsys, *fetch)
    assert code == 2
    assert_one_clear_error(err, "REDIS_DR_AGE_IDENTITY")
    monkeypatch.setenv("REDIS_DR_AGE_IDENTITY", str(wrong))
    code, _, err = run_cli(capsys, *fetch)
    assert code == 5
    assert_one_clear_error(err, "cannot decrypt")
    assert str(wrong) not in err
    assert not (tmp_path / "o.rdb").exists()


def test_redis_dying_mid_stream_leaves_nothing_listed(
    redis_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = redis_factory({"rdb-key-save-delay": "500"})
    populate_session_store(server.client(), sessions=4000, seed=2)
    storage = f"file://{tmp_path / 'store'}"

    def kill_later() -> None:
        time.sleep(1.0)
        server.stop()

    import threading

    threading.Thread(target=kill_later, daemon=True).start()
    code, _, err = run_cli(capsys, *backup_args(server.url, storage))
    assert code != 0
    assert_one_clear_error(err)
    assert listed(capsys, storage) == []


def test_killed_backup_process_leaves_nothing_listed(
    redis_factory, storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = redis_factory({"rdb-key-save-delay": "1000"})
    populate_session_store(server.client(), sessions=10_000, seed=3)
    cli = Path(sys.executable).with_name("redis-dr")
    api = {"PREFECT_API_URL": str(PREFECT_API_URL.value())}  # the test harness's API: no ephemeral start
    process = subprocess.Popen(
        [str(cli), *backup_args(server.url, storage_url)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **api},
    )
    try:
        wait_until_snapshot_runs(server, process)
        time.sleep(1.0)  # the snapshot is streaming into storage now
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert listed(capsys, storage_url) == []
