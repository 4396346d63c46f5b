"""A Redis password, in every spelling, leaves no trace in anything a run leaves behind.

Each URL form is run through the real command in a subprocess with its own
PREFECT_HOME and no PREFECT_API_URL (so its temporary Prefect API writes that
home's SQLite database), once failing (the server wants another password) and
once succeeding. Then the secret is looked for in the command's output, the
Prefect database (and its write-ahead log), Prefect's result storage (every
result persisted), the backup's files and manifest, and the argv and environment
of every process the command started, read while it ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from redis_dr.sandbox.redis_server import RedisServer
from tests.fixtures.redis_servers import TEST_SERVER_CONFIG

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("redis-dr"))
MARK = uuid.uuid4().hex
SECRET = f"S3cr3t/with@odd:chars-{MARK}"
#: Every spelling of the secret that a leak could take: the uuid alone catches a partial one.
NEEDLES = [s.encode() for s in (SECRET, quote(SECRET, safe=""), MARK)]

#: URL form -> (Redis URL for a server on a port, extra environment). The percent-encoded userinfo
#: is parsed as the unencoded one is (tests/redis/test_units.py has every spelling): one of them here.
FORMS: dict[str, Callable[[int], tuple[str, dict[str, str]]]] = {
    "userinfo-unencoded": lambda port: (f"redis://default:{SECRET}@127.0.0.1:{port}/0", {}),
    "query": lambda port: (f"redis://127.0.0.1:{port}/0?password={quote(SECRET, safe='')}", {}),
    "REDIS_PASSWORD": lambda port: (f"redis://127.0.0.1:{port}/0", {"REDIS_PASSWORD": SECRET}),
}


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_watching_children(
    args: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[bytes], dict[int, bytes]]:
    """Run the command; while it runs, keep the argv and environment of each process it starts."""
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    seen: dict[int, bytes] = {}
    while process.poll() is None:
        for pid in descendants(process.pid):
            try:
                seen[pid] = b"\0".join(
                    Path(f"/proc/{pid}/{name}").read_bytes() for name in ("cmdline", "environ")
                )
            except OSError:
                continue  # it ended meanwhile
        time.sleep(0.05)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(args, process.returncode, out, err), seen


def leaks(blob: bytes) -> list[str]:
    return [needle.decode() for needle in NEEDLES if needle in blob]


def files_under(root: Path) -> dict[str, bytes]:
    return (
        {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else {}
    )


@pytest.fixture(scope="module")
def migrated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PREFECT_HOME whose database exists already: each test starts from a copy (~10 s saved)."""
    home = tmp_path_factory.mktemp("prefect-template") / "prefect-home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(home)}
    create = "import asyncio; from prefect.server.database import provide_database_interface as db; "
    create += "asyncio.run(db().create_db())"
    subprocess.run([sys.executable, "-c", create], env=env, check=True, timeout=120)
    return home


@dataclass
class FormRuns:
    """What the two runs of one URL form left: their results, the processes seen, the directories."""

    home: Path
    store: Path
    runs: list[tuple[subprocess.CompletedProcess[bytes], dict[int, bytes]]]


def run_form(form: str, right: RedisServer, other: RedisServer, template: Path, root: Path) -> FormRuns:
    """A failing run (the server wants another password), then a successful one, in one PREFECT_HOME."""
    home, store = root / form / "prefect-home", root / form / "store"
    shutil.copytree(template, home)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "REDIS_PASSWORD")}
    env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",  # every result pickled to PREFECT_HOME/storage
    }
    runs = []
    for server in (other, right):
        url, extra = FORMS[form](server.port)
        args = [CLI, "backup", "--redis-url", url, "--storage", f"file://{store}", "--instance", "sessions"]
        runs.append(run_watching_children(args, env | extra))
    return FormRuns(home, store, runs)


@pytest.fixture(scope="module")
def form_runs(migrated_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FormRuns]]:
    """Every form's two runs, the forms side by side (each run mostly waits on its own Prefect API)."""
    root = tmp_path_factory.mktemp("secrets")
    with (
        RedisServer(TEST_SERVER_CONFIG, password=SECRET) as right,
        RedisServer(TEST_SERVER_CONFIG, password=f"another-{uuid.uuid4().hex}") as other,
        ThreadPoolExecutor(len(FORMS)) as pool,
    ):
        right.client().set("session:1", "x")
        futures = {form: pool.submit(run_form, form, right, other, migrated_home, root) for form in FORMS}
        yield {form: future.result() for form, future in futures.items()}


@pytest.mark.parametrize("form", list(FORMS))
def test_the_password_leaves_no_trace(form: str, form_runs: dict[str, FormRuns]) -> None:
    left = form_runs[form]
    for (result, processes), expected in zip(left.runs, (4, 0), strict=True):
        assert result.returncode == expected, result.stderr.decode()
        assert any(b"uvicorn" in seen for seen in processes.values()), (
            "the temporary Prefect API was not seen"
        )
        for pid, seen in processes.items():
            assert leaks(seen) == [], f"process {pid} ({seen[:200]!r}) holds the secret"
        assert leaks(result.stdout + result.stderr) == [], result.stderr.decode()
    failed, succeeded = (result for result, _ in left.runs)
    assert b"refused the password" in failed.stderr
    assert b"backing up sessions from redis://" in succeeded.stderr
    prefect_files = files_under(left.home)
    assert any(name.endswith(".db") for name in prefect_files), sorted(prefect_files)
    assert any(name.startswith("storage/") for name in prefect_files), "no persisted results to look at"
    for name, content in prefect_files.items():  # the database, its -wal, persisted results, logs
        assert leaks(name.encode() + b"\0" + content) == [], f"{left.home / name} holds the secret"
    backup_files = files_under(left.store)
    assert any(name.endswith("manifest.json") for name in backup_files)
    for name, content in backup_files.items():
        assert leaks(name.encode()) == [], name
        if name.endswith(".json"):
            assert leaks(content) == [], name
