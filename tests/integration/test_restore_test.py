"""The restore test against real backups: a good one passes every check, a backup whose data does not
match its manifest and a failing data check fail naming what did not match, and the throwaway
server is gone afterwards in every case (failures, an interrupted run, a killed one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_dr.errors import ConfigError
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.restore.source import choose_backup
from redis_dr.restore.verify import Result
from redis_dr.restore_test.container import OWNER_LABEL, owner, remove_orphans
from redis_dr.restore_test.data_check import run_command_check
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.restore_test.runner import RestoreTestReport, run_restore_test
from redis_dr.sandbox.redis_server import RedisServer
from tasks.restore_test import live_endpoint
from tests.integration.cli import assert_one_clear_error, run_cli
from tests.integration.test_validate import take_backup

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

INSTANCE = "sessions"
SESSIONS, EXPIRING, OTHER_DB = 2000, 50, 7
THROWAWAY_MARK = "redis-dr-throwaway-"


@pytest.fixture(scope="module")
def live() -> Iterator[RedisServer]:
    """The live server the backups come from: sessions, some expiring, and a second database."""
    server = RedisServer({"repl-diskless-sync-delay": "0"}).start()
    client = server.client()
    client.mset({f"session:{n}": os.urandom(48) for n in range(SESSIONS)})
    for n in range(EXPIRING):
        client.set(f"csrf:{n}", "t", ex=3600)
    client.hset("user:1", mapping={"name": "ada", "visits": 3})
    client.select(3)
    client.mset({f"other:{n}": n for n in range(OTHER_DB)})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def store(live: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A file location holding one good backup of the live server."""
    url = f"file://{tmp_path_factory.mktemp('restore-test-store')}"
    take_backup(live, url)
    return url


def throwaways() -> list[str]:
    """Running redis-servers started as throwaways: their working directory (`dir`) is one."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = os.readlink(entry / "cwd")
                title = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if THROWAWAY_MARK in cwd and "redis-server" in title:
                found.append(f"{entry.name} in {cwd}")
    return found


def throwaway_dirs() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"{THROWAWAY_MARK}*"))


@pytest.fixture(autouse=True)
def no_throwaway_left() -> Iterator[None]:
    """Every test here ends with no throwaway server running and no throwaway directory left."""
    before = set(throwaway_dirs())
    yield
    assert throwaways() == []
    assert set(throwaway_dirs()) - before == set()


def restore_test(
    store: str, live: RedisServer | None = None, why_not: str | None = None, **fields: object
) -> RestoreTestReport:
    request = RestoreTestRequest(instance=INSTANCE, storage=[store], **fields)  # type: ignore[arg-type]
    opened = choose_backup(request.backup, list(request.storage), INSTANCE)
    source = RedisEndpoint.from_url(live.url) if live is not None else None
    try:
        return run_restore_test(request, opened, [], source, why_not=why_not)
    finally:
        opened.close()


def test_a_good_backup_passes_every_check(store: str, live: RedisServer) -> None:
    report = restore_test(store, live, sample=100)

    assert report.passed, report.summary()
    names = {finding.name: finding.result for finding in report.verification.findings}
    for name in ("keys loaded", "db0 keys", "db3 keys", "db0 expiries", "sampled keys", "sampled values"):
        assert names[name] is Result.PASS, report.verification.findings
    assert names["live server"] is Result.PASS
    assert report.keys_restored == SESSIONS + EXPIRING + 1 + OTHER_DB
    assert report.source_keys == report.keys_restored
    assert "keys" in report.summary() and "passed" in report.summary()


def test_the_live_server_is_found_through_its_target_as_scheduled_tests_name_it(
    store: str, live: RedisServer
) -> None:
    """An environment whose instance has a target and no redis_url: its config says where it listens."""
    request = RestoreTestRequest(
        instance=INSTANCE, storage=[store], source_target=f"local://{live.data_dir / 'redis.conf'}"
    )
    opened = choose_backup(request.backup, list(request.storage), INSTANCE)
    try:
        report = run_restore_test(request, opened, [], live_endpoint(request))
    finally:
        opened.close()

    [finding] = [finding for finding in report.verification.findings if finding.name == "live server"]
    assert finding.result is Result.PASS and report.source_keys == report.keys_restored, finding


def test_a_live_server_whose_target_cannot_be_read_is_named_and_the_test_goes_on(store: str) -> None:
    report = restore_test(store, why_not="its address is not known: no such config file")

    [finding] = [finding for finding in report.verification.findings if finding.name == "live server"]
    assert finding.result is Result.WARN and "its address is not known: no such config file" in finding.detail
    assert report.passed


def test_a_backup_whose_data_does_not_match_its_manifest_fails_naming_it(
    live: RedisServer, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}"
    manifest = take_backup(live, url)
    path = tmp_path / INSTANCE / manifest.id / "manifest.json"
    data = json.loads(path.read_text())
    data["source"]["rdb_keyspace"]["0"]["keys"] += 25  # the manifest says 25 keys more than the data holds
    path.write_text(json.dumps(data))

    report = restore_test(url)

    assert not report.passed
    failed = {finding.name: finding.detail for finding in report.verification.failures}
    assert "keys loaded" in failed and "+25 unaccounted for" in failed["keys loaded"]
    assert "db0 expiries" in failed
    assert report.summary().startswith(f"restore test of {INSTANCE} backup {manifest.id} failed: keys loaded")


def test_a_failing_data_check_fails_with_its_exit_status_and_last_line(store: str) -> None:
    script = "import sys; print('checked 10 sessions'); print('session:7 cannot be decrypted'); sys.exit(3)"

    report = restore_test(store, check=[sys.executable, "-c", script])

    assert not report.passed and not report.verification.failures  # the data itself matched
    assert report.data_check is not None and report.data_check.exit_status == 3
    assert report.data_check.last_line == "session:7 cannot be decrypted"
    assert report.summary().endswith("failed: data check exit 3 (session:7 cannot be decrypted)")


def test_the_data_check_reads_the_throwaway_by_its_url_and_gets_no_secrets(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = textwrap.dedent(
        """
        import os, redis
        leaked = [name for name in ("REDIS_PASSWORD", "AWS_SECRET_ACCESS_KEY", "REDIS_DR_AGE_IDENTITY")
                  if name in os.environ]
        keys = redis.Redis.from_url(os.environ["REDIS_URL"]).dbsize()
        print(f"dbsize {keys} leaked {leaked} app {os.environ.get('APP_KEY_FILE')}")
        """
    )
    secrets = {"REDIS_PASSWORD": "pw", "AWS_SECRET_ACCESS_KEY": "aws", "APP_KEY_FILE": "/etc/app/key"}
    for name, value in secrets.items():  # put back as they were after the test (the S3 fixture's keys)
        monkeypatch.setenv(name, value)
    report = restore_test(
        store, check=[sys.executable, "-c", script], check_env=["APP_KEY_FILE", "PYTHONPATH"]
    )

    assert report.data_check is not None and report.data_check.passed, report.data_check
    assert report.data_check.last_line == f"dbsize {SESSIONS + EXPIRING + 1} leaked [] app /etc/app/key"


def entry_point_check(url: str) -> tuple[bool, str]:
    """A data check in Python (the tests' entry point): db0 holds sessions."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        found = sum(1 for _ in client.scan_iter(match="session:*", count=1000))
    finally:
        client.close()
    return found == SESSIONS, f"{found} sessions"


def test_a_python_entry_point_is_a_data_check(store: str) -> None:
    report = restore_test(store, check_entry_point=f"{__name__}:entry_point_check")

    assert report.data_check is not None and report.data_check.passed
    assert report.data_check.last_line == f"{SESSIONS} sessions"


def test_a_check_that_hangs_is_killed_at_its_timeout(tmp_path: Path) -> None:
    result = run_command_check(["sleep", "600"], "unix:///nowhere", timeout=0.5, passthrough=[])

    assert not result.passed and result.exit_status is None
    assert result.last_line.startswith("timed out after")


def test_a_check_program_that_does_not_exist_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="data check '/no/such/check' not found"):
        run_command_check(["/no/such/check"], "unix:///nowhere", timeout=5, passthrough=[])


def test_the_cli_fails_a_bad_check_with_exit_5_one_line_and_the_report(
    capsys: pytest.CaptureFixture[str], store: str
) -> None:
    code, out, err = run_cli(
        capsys, "restore-test", "--storage", store, "--instance", INSTANCE, "--json",
        "--check", f"{sys.executable} -c 'import sys; print(\"no key\"); sys.exit(2)'",
    )  # fmt: skip

    assert code == 5
    assert_one_clear_error(err, "data check exit 2 (no key)")
    report = json.loads(out)
    assert report["data_check"]["exit_status"] == 2 and report["data_check"]["last_line"] == "no key"
    assert report["keys_restored"] == SESSIONS + EXPIRING + 1 + OTHER_DB
    assert all(finding["result"] == "pass" for finding in report["verification"]["findings"][:-1])


#: A restore test without Prefect in a process of its own (the CLI's temporary API takes ~10 s to start).
CORE_RUN = """
import sys
from redis_dr.restore.source import choose_backup
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.restore_test.runner import run_restore_test
request = RestoreTestRequest(instance="sessions", storage=[sys.argv[1]], check=sys.argv[2:])
run_restore_test(request, choose_backup("latest", [sys.argv[1]], "sessions"), [], None)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_or_killed_run_leaves_no_throwaway_server(store: str, signum: int) -> None:
    """A run stopped while its data check runs: SIGTERM (the CLI) unwinds and stops the server;
    SIGKILL leaves it to the kernel: the server and the check were started to die with their parent."""
    marker = f"redis-dr-check-{signum}-{os.getpid()}"
    check = [sys.executable, "-c", "import time; time.sleep(600)", marker]
    if signum == signal.SIGTERM:
        cli = [sys.executable, "-m", "cli.main", "restore-test", "--storage", store, "--instance", INSTANCE]
        command = [*cli, "--check", " ".join(f"'{part}'" for part in check)]
    else:
        command = [sys.executable, "-c", CORE_RUN, store, *check]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not _check_runs(check):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the data check never started"
            time.sleep(0.1)
        assert throwaways(), "the throwaway server runs while its data check does"
        process.send_signal(signum)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 10
    while (throwaways() or _check_runs(check)) and time.monotonic() < deadline:
        # the kernel's SIGKILL of the children is asynchronous
        time.sleep(0.05)
    assert throwaways() == []
    assert not _check_runs(check), "the data check outlived its run"
    if signum == signal.SIGKILL:
        for path in throwaway_dirs():  # the killed run could not remove its directory: tidy the test's
            subprocess.run(["rm", "-rf", str(path)], check=False)
    else:
        assert process.returncode == 128 + signal.SIGTERM


def _check_runs(check: list[str]) -> bool:
    """The data check command runs (a process whose argv is exactly `check`)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if argv[:-1] == check:  # cmdline ends with a NUL
                return True
    return False


def test_a_container_throwaway_from_the_configured_image_passes_and_is_removed(
    store: str, live: RedisServer, docker_engine: Any, docker_test_image: str
) -> None:
    report = restore_test(
        store, live, image=docker_test_image, check=["redis-cli", "-s", "{socket}", "dbsize"]
    )

    assert report.passed, report.summary()
    assert report.throwaway.endswith(f"(container of {docker_test_image})")
    assert report.data_check is not None and report.data_check.last_line == str(SESSIONS + EXPIRING + 1)
    assert docker_engine.containers.list(all=True, filters={"label": OWNER_LABEL}) == []


def test_a_container_left_by_a_killed_run_is_removed_by_the_next(
    docker_engine: Any, docker_test_image: str
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    orphan = docker_engine.containers.create(
        docker_test_image, ["redis-server", "--port", "0"], labels={OWNER_LABEL: f"{dead.stdout.strip()}:1"}
    )
    ours = docker_engine.containers.create(
        docker_test_image, ["redis-server", "--port", "0"], labels={OWNER_LABEL: owner()}
    )
    try:
        assert remove_orphans(docker_engine) == [orphan.name]
        assert [c.id for c in docker_engine.containers.list(all=True, filters={"label": OWNER_LABEL})] == [
            ours.id
        ]
    finally:
        ours.remove(force=True)
