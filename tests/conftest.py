"""Shared fixtures: real servers on free loopback ports."""

import os

from cli.prefect_runtime import quiet_prefect_console

# Retry backoff in seconds for tasks; read when tasks.policy is first imported.
os.environ.setdefault("REDIS_DR_RETRY_DELAY", "0.2")
# Prefect configured as the CLI configures it in a terminal (before anything imports it).
quiet_prefect_console()

pytest_plugins = [
    "tests.fixtures.redis_servers",
    "tests.fixtures.storage_servers",
    "tests.fixtures.prefect_harness",
    "tests.fixtures.prefect_server",
]
