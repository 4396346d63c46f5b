"""What the restore tests share: a location holding one backup of a small session store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from redis_dr.sandbox.redis_server import RedisServer
from tests.integration.cli import backup_with_cli


@pytest.fixture
def storage(redis_factory: Callable[..., RedisServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A file location holding one backup of 50 sessions (`session:<i>` = i, expiring in an hour)."""
    server = redis_factory()
    server.client().mset({f"session:{i}": i for i in range(50)})
    for i in range(50):
        server.client().expire(f"session:{i}", 3600)
    url = f"file://{tmp_path / 'backups'}"
    backup_with_cli(capsys, server.url, url)
    return url
