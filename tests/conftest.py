"""Shared fixtures: real servers on free loopback ports."""

import os
from collections import defaultdict

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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the time spent per test directory (setup, call and teardown summed), slowest first.

    Session fixtures are counted where they start and stop: in the first and last test using them.
    """
    seconds: dict[str, float] = defaultdict(float)
    tests: dict[str, set[str]] = defaultdict(set)
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                area = report.nodeid.split("::")[0].rpartition("/")[0]
                seconds[area] += report.duration
                tests[area].add(report.nodeid)
    if not seconds:
        return
    terminalreporter.write_sep("=", "time per area")
    for area, total in sorted(seconds.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{total:8.1f}s  {len(tests[area]):4d} tests  {area}")
