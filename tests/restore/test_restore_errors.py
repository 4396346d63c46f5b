"""Bad input to `redis-dr restore`: one clear line, a non-zero exit, and a target left as it was."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyrage
import pytest

from redis_dr.catalog import Catalog
from redis_dr.platforms.base import ServerState
from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage
from tests.fixtures.targets import TargetServer
from tests.integration.cli import assert_one_clear_error, backup_with_cli, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]
Factory = Callable[..., TargetServer]


class Untouched:
    """What a target looked like before a refused restore: its process, keys and data files."""

    def __init__(self, target: TargetServer) -> None:
        self.target = target
        self.state = self._read()

    def _read(self) -> tuple[object, ...]:
        client = self.target.client()
        root = Path(self.target.platform.layout().dir)
        files = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip
        return client.info("server")["process_id"], sorted(client.keys("*")), files

    def check(self) -> None:
        assert self.target.platform.state() is ServerState.RUNNING
        assert self._read() == self.state



@pytest.fixture
def target(local_target_factory: Factory) -> TargetServer:
    made = local_target_factory({"save": "3600 1"})
    made.client().set("precious", "data")
    made.client().save()
    return made


def restore_args(storage: str, target: str, *extra: str) -> list[str]:
    return ["restore", "--storage", storage, "--instance", "sessions", "--target", target, "--yes", *extra]


def test_an_unknown_backup_id(storage: str, target: TargetServer, capsys: pytest.CaptureFixture[str]) -> None:
    untouched = Untouched(target)
    code, _, err = run_cli(capsys, *restore_args(storage, target.platform.target, "--backup", "20200101T000000Z"))
    assert code == 3
    assert_one_clear_error(err, "no backup 20200101T000000Z")
    untouched.check()


def test_an_unreadable_newest_manifest(storage: str, target: TargetServer, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = Catalog(open_storage(storage), "sessions")
    (backup_id,) = catalog.backup_ids()
    catalog.storage.put_bytes(catalog.manifest_key("29990101T000000Z"), b"{not json")
    untouched = Untouched(target)
    code, _, err = run_cli(capsys, *restore_args(storage, target.platform.target))
    assert code == 5
    assert_one_clear_error(err, "29990101T000000Z", "refusing to pass over")
    untouched.check()
    assert backup_id  # the older backup exists but is not silently taken


def test_a_corrupt_object_is_caught_while_staging(
    storage: str, target: TargetServer, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = Catalog(open_storage(storage), "sessions")
    (backup_id,) = catalog.backup_ids()
    key = catalog.data_key(backup_id, catalog.load(backup_id).files[0].name)
    data = bytearray(catalog.storage.get_bytes(key))
    data[len(data) // 2] ^= 0x55
    path = Path(storage.removeprefix("file://")) / key
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    untouched = Untouched(target)
    code, _, err = run_cli(capsys, *restore_args(storage, target.platform.target, "--no-checkpoint"))
    assert code == 5
    assert_one_clear_error(err, "corrupt")
    untouched.check()


def test_a_wrong_decryption_key(
    redis_factory: Callable[..., RedisServer], target: TargetServer, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    right, wrong = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    server = redis_factory()
    server.client().set("k", "v")
    url = f"file://{tmp_path / 'enc'}"
    backup_with_cli(capsys, server.url, url, "--encrypt-to", str(right.to_public()))
    untouched = Untouched(target)
    monkeypatch.delenv("REDIS_DR_AGE_IDENTITY", raising=False)
    code, _, err = run_cli(capsys, *restore_args(url, target.platform.target, "--no-checkpoint"))
    assert code == 6
    assert_one_clear_error(err, "encrypted", "REDIS_DR_AGE_IDENTITY")
    monkeypatch.setenv("REDIS_DR_AGE_IDENTITY", str(wrong))
    code, _, err = run_cli(capsys, *restore_args(url, target.platform.target, "--no-checkpoint"))
    assert code == 5
    assert_one_clear_error(err, "cannot decrypt")
    assert str(wrong) not in err
    untouched.check()


def test_a_missing_container(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, *restore_args(storage, "docker://no-such-redis-container"))
    assert code == 3
    assert_one_clear_error(err, "no-such-redis-container", "not found")


def test_a_missing_config_file(storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, *restore_args(storage, f"local://{tmp_path}/nowhere/redis.conf"))
    assert code == 3
    assert_one_clear_error(err, f"{tmp_path}/nowhere/redis.conf")


def test_a_wrong_target_password_is_refused_and_never_shown(
    storage: str, local_target_factory: Factory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = local_target_factory(password="right-horse")
    untouched = Untouched(target)
    monkeypatch.setenv("REDIS_PASSWORD", "wrong-staple-77")
    code, out, err = run_cli(capsys, *restore_args(storage, target.platform.target,
                                                   "--redis-url", f"redis://127.0.0.1:{target.port}/0"))  # fmt: skip
    assert code == 4
    assert_one_clear_error(err, "password")
    assert "wrong-staple-77" not in out + err and "right-horse" not in out + err
    untouched.check()


def test_not_enough_disk_is_refused_before_anything_is_written(
    storage: str, local_target_factory: Factory, tmpfs_factory: Callable[[str], Path],
    redis_factory: Callable[..., RedisServer], capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:  # fmt: skip
    big = redis_factory()
    big.client().set("blob", os.urandom(3_000_000))  # incompressible: the RDB holds 3 MB
    url = f"file://{tmp_path / 'big'}"
    backup_with_cli(capsys, big.url, url)
    small = tmpfs_factory("1m")
    target = local_target_factory({"dir": str(small)})
    untouched = Untouched(target)
    code, _, err = run_cli(capsys, *restore_args(url, target.platform.target))
    assert code == 6
    assert_one_clear_error(err, "disk space", "free space first")
    untouched.check()


def test_a_replica_is_refused(
    storage: str, redis_factory: Callable[..., RedisServer], local_target_factory: Factory,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    master = redis_factory()
    target = local_target_factory({"replicaof": f"127.0.0.1 {master.port}"})
    code, _, err = run_cli(capsys, *restore_args(storage, target.platform.target))
    assert code == 6
    assert_one_clear_error(err, "replica", "restore its master instead")
    assert target.platform.state() is ServerState.RUNNING


def test_without_a_terminal_and_without_yes_nothing_happens(
    storage: str, target: TargetServer, capsys: pytest.CaptureFixture[str]
) -> None:
    untouched = Untouched(target)
    args = [a for a in restore_args(storage, target.platform.target) if a != "--yes"]
    code, _, err = run_cli(capsys, *args)
    assert code == 6
    assert_one_clear_error(err, "--yes")
    assert "restore plan" in err  # the plan was shown first
    untouched.check()


def test_replay_into_a_server_that_does_not_answer(storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    code, _, err = run_cli(capsys, "restore", "--storage", storage, "--instance", "sessions",
                           "--redis-url", url, "--yes")  # fmt: skip
    assert code == 6
    assert_one_clear_error(err, "does not answer")


def slow_backup(
    redis_factory: Callable[..., RedisServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> str:
    """A location holding a backup of 3,000 keys: ~6 s to load into a target with `SLOW_LOAD`."""
    big = redis_factory()
    big.client().mset({f"session:{i}": i for i in range(3000)})
    url = f"file://{tmp_path / 'big'}"
    backup_with_cli(capsys, big.url, url)
    return url


#: 2 ms per key at load (a hidden debug setting), and INFO answered while loading (events every KiB).
SLOW_LOAD = {"key-load-delay": "2000", "loading-process-events-interval-bytes": "1024"}


def test_sigterm_while_the_target_loads_the_backup_puts_the_previous_data_back(
    storage: str, redis_factory: Callable[..., RedisServer], local_target_factory: Factory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    url = slow_backup(redis_factory, tmp_path, capsys)
    target = local_target_factory({"save": "3600 1", **SLOW_LOAD})  # the backup loads in ~6 s, ours in 20 ms
    target.client().mset({f"old:{i}": i for i in range(10)})
    target.client().save()
    untouched_files = Untouched(target).state[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *restore_args(url, target.platform.target, "--no-checkpoint")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until_loading(target, process)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert "previous files put back" in err.strip().splitlines()[-1]
    assert target.platform.state() is ServerState.RUNNING
    assert sorted(target.client().keys("*")) == sorted(f"old:{i}".encode() for i in range(10))
    assert Untouched(target).state[2] == untouched_files


def raw_info(port: int) -> bytes:
    """INFO persistence over a bare socket (redis-py's CLIENT SETINFO is refused while loading);
    empty when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"INFO persistence\r\n")
            reply = sock.recv(65536)
            header, _, body = reply.partition(b"\r\n")
            while header.startswith(b"$") and len(body) < int(header[1:]) and (more := sock.recv(65536)):
                body += more
            return body
    except OSError:
        return b""  # stopped, or starting: not loading yet


def wait_until_loading(target: TargetServer, process: subprocess.Popen[str]) -> None:
    """Block until the target (restarted by the restore) is loading, while the restore runs."""
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the target never started loading the backup"
        if b"\r\nloading:1\r\n" in raw_info(target.port):
            return
        time.sleep(0.02)


def test_a_second_restore_of_a_target_being_restored_is_refused(
    redis_factory: Callable[..., RedisServer], local_target_factory: Factory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("REDIS_DR_STATE_DIR", str(tmp_path / "state"))
    storage = slow_backup(redis_factory, tmp_path, capsys)
    target = local_target_factory({"save": "3600 1", **SLOW_LOAD})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    first = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *restore_args(storage, target.platform.target, "--no-checkpoint")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until_loading(target, first)
        code, _, err = run_cli(capsys, *restore_args(storage, target.platform.target, "--no-checkpoint"))
        _, first_err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert code == 6
    assert_one_clear_error(err, f"another restore of {target.platform.target} is running (pid {first.pid} since")
    assert first.returncode == 0, first_err
    assert target.client().dbsize() == 3000


def test_a_checkpoint_that_cannot_be_stored_stops_the_restore_saying_the_target_was_not_touched(
    redis_factory: Callable[..., RedisServer], target: TargetServer, tmpfs_factory: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    disk = tmpfs_factory("2m")
    server = redis_factory()
    server.client().mset({f"session:{i}": i for i in range(50)})
    url = f"file://{disk}"
    backup_with_cli(capsys, server.url, url)
    target.client().set("big", os.urandom(3_000_000))  # the checkpoint will not fit in 2 MiB
    untouched = Untouched(target)

    code, _, err = run_cli(capsys, *restore_args(url, target.platform.target))

    assert code != 0
    line = assert_one_clear_error(err, "the target was not touched")
    assert "disk is full" in line or "no space" in line, line
    untouched.check()


def test_a_password_left_exported_for_another_server_does_not_override_the_targets_own(
    storage: str, local_target_factory: Factory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = local_target_factory(password="the-targets-own")
    monkeypatch.setenv("REDIS_PASSWORD", "another-servers-password")
    code, out, err = run_cli(capsys, *restore_args(storage, target.platform.target, "--no-checkpoint"))
    assert code == 0, err
    assert "the-targets-own" not in out + err and "another-servers-password" not in out + err
    assert target.client().get("session:7") == b"7"
