"""Shared fixtures: real servers on free loopback ports."""

import os
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

from cli.prefect_runtime import quiet_prefect_console

# Retry backoff in seconds for tasks; read when tasks.policy is first imported.
os.environ.setdefault("REDIS_DR_RETRY_DELAY", "0.2")
# A run waiting for another run of its instance gives up after 2 minutes, not hours.
os.environ.setdefault("REDIS_DR_LEASE_WAIT", "120")
# Runs keep instances apart with lock files of this host, as on the terminal's temporary API:
# the test harness's API runs no service that would revoke the lease of a run a test killed.
# The tests of the server's leases (a real `prefect server start`) ask for them.
os.environ.setdefault("REDIS_DR_LEASE", "host")
# Prefect configured as the CLI configures it in a terminal (before anything imports it).
quiet_prefect_console()


def _own_directories_per_worker() -> None:
    """Under pytest-xdist (`make test` runs two workers), each worker gets its own temporary and
    state directories: throwaway servers, lock files and leases of one never meet the other's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    base = Path(tempfile.gettempdir()) / f"redis-dr-tests-{os.getuid()}-{worker}"
    (base / "tmp").mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(base / "tmp")
    tempfile.tempdir = None  # recomputed from TMPDIR
    os.environ.setdefault("REDIS_DR_STATE_DIR", str(base / "state"))


_own_directories_per_worker()

pytest_plugins = [
    "tests.fixtures.disks",
    "tests.fixtures.redis_servers",
    "tests.fixtures.storage_servers",
    "tests.fixtures.prefect_harness",
    "tests.fixtures.prefect_server",
    "tests.fixtures.local_targets",
    "tests.fixtures.docker_targets",
    "tests.fixtures.unprivileged",
    "tests.fixtures.prometheus_servers",
]


#: How many test files the summary names, slowest first.
SLOWEST_FILES = 25


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the time spent per test directory and the slowest test files (setup, call and teardown
    summed), slowest first.

    Session fixtures are counted where they start and stop: in the first and last test using them.
    """
    areas: dict[str, float] = defaultdict(float)
    files: dict[str, float] = defaultdict(float)
    tests: dict[str, set[str]] = defaultdict(set)
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                file = report.nodeid.split("::")[0]
                for key, totals in ((file.rpartition("/")[0], areas), (file, files)):
                    totals[key] += report.duration
                    tests[key].add(report.nodeid)
    if not areas:
        return
    for title, totals, most in (("time per area", areas, len(areas)), ("slowest files", files, SLOWEST_FILES)):
        terminalreporter.write_sep("=", title)
        for key, total in sorted(totals.items(), key=lambda item: -item[1])[:most]:
            terminalreporter.write_line(f"{total:8.1f}s  {len(tests[key]):4d} tests  {key}")
