"""Backup requests and environment files: validation gives one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_dr.config import SnapshotMode, build_request, load_environment
from redis_dr.errors import ConfigError, NotFoundError
from redis_dr.pipeline import Compression

ENV_FILE = """
environment: production
instances:
  sessions:
    redis_url: redis://redis-master.redis.svc:6379/0
    password: {prefect_secret: redis-sessions-password}
    storage:
      - s3://acme-redis-backups/prod?region=eu-west-1
      - gs://acme-redis-backups-dr/prod
    compression: gzip
    encrypt_to: [age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq]
  cache:
    redis_url: redis://cache:6379/0
    storage: file:///var/backups/redis
    mode: bgsave
"""


def test_environment_file_gives_requests_by_name(tmp_path: Path) -> None:
    path = tmp_path / "production.yaml"
    path.write_text(ENV_FILE)
    env = load_environment(path)

    sessions = env.backup_request("sessions")
    assert sessions.environment == "production"
    assert sessions.storage[1] == "gs://acme-redis-backups-dr/prod"
    assert sessions.compression is Compression.GZIP
    assert sessions.password is not None and sessions.password.prefect_secret == "redis-sessions-password"

    cache = env.backup_request("cache", compression="none")
    assert cache.mode is SnapshotMode.BGSAVE
    assert cache.storage == ["file:///var/backups/redis"]
    assert cache.compression is Compression.NONE

    with pytest.raises(NotFoundError, match="no instance 'nope'.*cache, sessions"):
        env.backup_request("nope")


def test_inline_password_in_environment_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(ENV_FILE.replace("redis://cache:6379/0", "redis://:hunter2@cache:6379/0"))
    with pytest.raises(ConfigError) as caught:
        load_environment(path).backup_request("cache")
    assert "REDIS_PASSWORD" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"instance": "Sessions!"}, "instance name"),
        ({"storage": []}, "invalid storage"),
        ({"compression": "brotli"}, "invalid compression"),
        ({"mode": "magic"}, "invalid mode"),
        ({"password": {"env": "A", "prefect_secret": "b"}}, "exactly one"),
    ],
)
def test_bad_requests_are_one_line_config_errors(fields: dict[str, object], expected: str) -> None:
    base: dict[str, object] = {
        "instance": "sessions",
        "redis_url": "redis://h:6379/0",
        "storage": "file:///x",
    }
    with pytest.raises(ConfigError, match=expected) as caught:
        build_request(**{**base, **fields})
    assert "\n" not in str(caught.value)


def test_missing_and_malformed_environment_files(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        load_environment(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("environment: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_environment(broken)
    typo = tmp_path / "typo.yaml"
    typo.write_text("environment: x\ninstances:\n  a:\n    redis_url: redis://h\n    storge: file:///x\n")
    with pytest.raises(ConfigError, match="typo.yaml"):
        load_environment(typo)
