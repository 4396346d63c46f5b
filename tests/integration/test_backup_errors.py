"""Bad input gets one clear line and a non-zero exit, and a failed backup is never listed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pyrage
import pytest
from prefect.settings import PREFECT_API_URL

from cli.demo_sessions import populate_session_store
from redis_dr.errors import ConfigError, StorageFullError
from redis_dr.fetch import output_path
from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.redis_server import RedisServer
from tests.integration.cli import assert_one_clear_error, run_cli, wait_until_snapshot_streams

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

    running = threading.Event()
    running.set()
    killed = threading.Event()

    def kill_once_streaming() -> None:
        wait_until_snapshot_streams(server, os.getpid(), running.is_set)
        server.stop()
        killed.set()

    killer = threading.Thread(target=kill_once_streaming, daemon=True)
    killer.start()
    try:
        code, _, err = run_cli(capsys, *backup_args(server.url, storage))
    finally:
        running.clear()
        killer.join(timeout=30)
    assert killed.is_set(), "the server was not stopped while the snapshot streamed"
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
        wait_until_snapshot_streams(server, process.pid, lambda: process.poll() is None)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert listed(capsys, storage_url) == []


CLI = str(Path(sys.executable).with_name("redis-dr"))


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--storage", "ftp://nowhere/x"], "invalid storage.1: unsupported storage URL ftp://nowhere/x"),
        (["--encrypt-to", "age1notakey"], "invalid encrypt_to.0: not an age recipient"),
        (["--label", "bad key=v"], "label 'bad key' is not allowed"),
        (["--instance", "Sessions!"], "instance name 'Sessions!' is not allowed"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(
    redis_server: RedisServer, tmp_path: Path, extra: list[str], fragment: str
) -> None:
    """Exit 2 and one line; Redis never contacted, no Prefect API started, no flow run recorded."""
    connections = redis_server.client().info("stats")["total_connections_received"]
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(home)}
    args = [CLI, *backup_args(redis_server.url, f"file://{tmp_path / 'store'}"), *extra]
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert_one_clear_error(result.stderr, fragment)
    assert not home.exists() or not list(home.glob("*.db*")), "a Prefect database was created"
    assert redis_server.client().info("stats")["total_connections_received"] == connections + 1  # our INFO
    assert not (tmp_path / "store").exists()


def test_bad_redis_url_is_refused_before_anything_runs(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(home)}
    args = [CLI, *backup_args("redis://127.0.0.1:notaport/0", f"file://{tmp_path / 'store'}")]
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 2, result.stderr
    assert_one_clear_error(result.stderr, "invalid redis_url: malformed Redis URL", "notaport")
    assert not home.exists() or not list(home.glob("*.db*"))


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        (
            "rediss://127.0.0.1:7400/0?ssl_ca_certs=/no/such.pem",
            "ssl_ca_certs file /no/such.pem does not exist",
        ),
        ("redis://127.0.0.1:7400/0?password=Zs&ecret=Ztail", "may hold an unencoded '&': percent-encode it"),
        ("redis://127.0.0.1:7400/0?password=Zs&db=Ztail", "may hold an unencoded '&': percent-encode it"),
    ],
)
def test_bad_tls_file_or_password_tail_in_the_redis_url_is_refused_before_anything_runs(
    tmp_path: Path, url: str, fragment: str
) -> None:
    """Exit 2 at once (no retries of a connection), and no part of a password's tail in the line."""
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(home)}
    args = [CLI, *backup_args(url, f"file://{tmp_path / 'store'}")]
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert_one_clear_error(result.stderr, fragment)
    assert "Ztail" not in result.stderr and "ecret" not in result.stderr
    assert not home.exists() or not list(home.glob("*.db*")), "a Prefect database was created"
    assert not (tmp_path / "store").exists()


def test_plain_redis_reached_with_rediss_says_tls_is_the_mismatch(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"rediss://127.0.0.1:{redis_server.port}/0"
    code, _, err = run_cli(capsys, *backup_args(url, f"file://{tmp_path}"))
    assert code == 2
    assert_one_clear_error(err, "answers without TLS", "TLS is probably the mismatch", "redis://")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis://127.0.0.1:{port}/99", "has no database 99"),
        ("unix://{tmp}/no-such-redis.sock", "there is no Redis socket"),
    ],
)
def test_missing_database_or_socket_is_bad_input(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, fragment: str
) -> None:
    url = url.format(port=redis_server.port, tmp=tmp_path)
    code, _, err = run_cli(capsys, *backup_args(url, f"file://{tmp_path / 'store'}"))
    assert code == 2
    assert_one_clear_error(err, fragment)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_encrypted_object_is_an_integrity_error(
    redis_server: RedisServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
) -> None:
    populate_session_store(redis_server.client(), sessions=300, seed=4)
    identity = pyrage.x25519.Identity.generate()
    storage = f"file://{tmp_path / 'store'}"
    code, out, err = run_cli(
        capsys, *backup_args(redis_server.url, storage, "--encrypt-to", str(identity.to_public()))
    )
    assert code == 0, err
    [data] = (tmp_path / "store" / "sessions" / out.strip()).glob("dump*.age")
    blob = bytearray(data.read_bytes())
    if damage == "truncate":
        del blob[len(blob) * 2 // 3 :]
    else:
        blob[len(blob) * 2 // 3] ^= 0x01
    data.chmod(0o644)
    data.write_bytes(bytes(blob))
    monkeypatch.setenv("REDIS_DR_AGE_IDENTITY", str(identity))
    output = tmp_path / "o.rdb"
    code, _, err = run_cli(
        capsys, "fetch", "--storage", storage, "--instance", "sessions", "--output", str(output)
    )
    assert code == 5, err
    assert_one_clear_error(err, "is corrupt", "age payload is damaged or truncated")
    assert not output.exists()


def test_fetch_onto_an_existing_path_is_bad_input(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_server.client().set("k", "v")
    storage = f"file://{tmp_path / 'store'}"
    assert run_cli(capsys, *backup_args(redis_server.url, storage))[0] == 0
    output = tmp_path / "taken.rdb"
    output.write_bytes(b"keep me")
    code, _, err = run_cli(
        capsys, "fetch", "--storage", storage, "--instance", "sessions", "--output", str(output)
    )
    assert code == 2
    line = assert_one_clear_error(err, str(output), "already exists", "choose a new path")
    assert line.count("already exists") == 1
    assert output.read_bytes() == b"keep me"
    code, _, err = run_cli(
        capsys, "fetch", "--storage", storage, "--instance", "sessions", "--output", f"{tmp_path / 'dir'}/"
    )
    assert code == 2
    assert_one_clear_error(err, "names a directory")
    assert not (tmp_path / "dir").exists()


def test_unreadable_manifest_makes_list_exit_with_a_documented_code(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_server.client().set("k", "v")
    storage = f"file://{tmp_path / 'store'}"
    code, out, err = run_cli(capsys, *backup_args(redis_server.url, storage))
    assert code == 0, err
    broken = tmp_path / "store" / "sessions" / "20200101T000000Z"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    code, out, err = run_cli(capsys, "list", "--storage", storage, "--instance", "sessions")
    assert code == 5
    assert "unreadable manifest" in err and out.count("Z ") == 1
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "| 5 | integrity:" in readme and "manifest that cannot be read" in readme


@pytest.fixture
def small_tmpfs(tmpfs_factory: Callable[[str], Path]) -> Path:
    """A 1 MiB tmpfs mounted for this test alone (needs root)."""
    return tmpfs_factory("1m")


def test_fetch_output_on_a_full_or_read_only_disk_or_in_a_missing_directory(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], small_tmpfs: Path
) -> None:
    redis_server.client().set("big", os.urandom(2 << 20))  # a 2 MiB RDB does not fit in 1 MiB
    storage = f"file://{tmp_path / 'store'}"
    assert run_cli(capsys, *backup_args(redis_server.url, storage))[0] == 0
    fetch = ["fetch", "--storage", storage, "--instance", "sessions", "--output"]

    full = small_tmpfs / "o1.rdb"
    code, _, err = run_cli(capsys, *fetch, str(full))
    assert code == StorageFullError.exit_code, err
    assert_one_clear_error(err, "no space left", str(full))
    assert list(small_tmpfs.iterdir()) == []  # nothing partial left

    remount = ["mount", "-o", "remount,ro", str(small_tmpfs)]
    subprocess.run(remount, capture_output=True, timeout=30, check=True)
    code, _, err = run_cli(capsys, *fetch, str(small_tmpfs / "o2.rdb"))
    assert code == 4, err
    assert_one_clear_error(err, f"cannot write {small_tmpfs / 'o2.rdb'}: read-only file system")

    missing = tmp_path / "nonexistent" / "dir"
    code, _, err = run_cli(capsys, *fetch, str(missing / "o1.rdb"))
    assert code == 2, err
    assert_one_clear_error(err, f"the directory {missing} does not exist")
    assert not (tmp_path / "nonexistent").exists()


def test_fetch_output_naming_a_directory_is_refused(tmp_path: Path) -> None:
    for text in (f"{tmp_path}/some/dir/", str(tmp_path)):
        with pytest.raises(ConfigError, match="--output .* names a directory; give a file path"):
            output_path(text)
    assert output_path(f"{tmp_path}/o.rdb") == tmp_path / "o.rdb"
