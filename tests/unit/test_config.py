"""Backup requests and environment files: validation gives one clear line."""

from __future__ import annotations

from pathlib import Path

import pyrage
import pytest
import yaml

from redis_dr.config import BackupRequest, SecretRef, SnapshotMode, build_request
from redis_dr.environment import load_environment
from redis_dr.errors import ConfigError, NotFoundError
from redis_dr.pipeline import Compression

RECIPIENT = str(pyrage.x25519.Identity.generate().to_public())
SECRET = "S3cr3t/with@odd:chars-5f0c2a"
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
    encrypt_to: [{recipient}]
  cache:
    redis_url: redis://cache:6379/0
    storage: file:///var/backups/redis
    mode: bgsave
""".replace("{recipient}", RECIPIENT)


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
        ({"password": {"env": "NOT A NAME"}}, "not an environment variable name"),
        ({"password": {"prefect_secret": "Bad Block!"}}, "not a Secret block name"),
        (
            {"storage": ["file:///x", "ftp://nowhere"]},
            r"invalid storage\.1: unsupported storage URL ftp://nowhere",
        ),
        ({"storage": "s3://b/p?regoin=eu"}, "unknown option 'regoin'"),
        ({"redis_url": "redis://h:notaport/0"}, "invalid redis_url: malformed Redis URL"),
        ({"redis_url": "http://h:1"}, "unsupported Redis URL"),
        ({"redis_url": "redis://h:1/x"}, "not a number"),
        ({"encrypt_to": ["age1bogus"]}, r"invalid encrypt_to\.0: not an age recipient"),
        ({"environment": "Prod X"}, "^environment name 'Prod X' is not allowed"),
        ({"labels": {"a b": "c"}}, "label 'a b' is not allowed"),
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


@pytest.mark.parametrize(
    "url",
    [
        f"redis://backup:{SECRET}@127.0.0.1:6379/0",
        f"redis://:{SECRET}@127.0.0.1:6379/0",
        f"redis://127.0.0.1:6379/0?password={SECRET}",
        f"redis://127.0.0.1:6379/0?username=backup&password={SECRET}",
        f"unix://backup:{SECRET}@/run/redis.sock",
    ],
)
def test_a_request_never_holds_a_password_and_never_echoes_it(url: str) -> None:
    with pytest.raises(ConfigError, match="holds a password: put it in REDIS_PASSWORD") as caught:
        build_request(instance="sessions", redis_url=url, storage="file:///x")
    assert SECRET not in str(caught.value)
    assert "S3cr3t" not in str(caught.value)


def test_validation_errors_do_not_carry_the_input() -> None:
    """What Prefect shows when the UI form is refused is pydantic's own text: no input value in it."""
    with pytest.raises(Exception) as caught:
        BackupRequest.model_validate(
            {"instance": "s", "redis_url": f"redis://:{SECRET}@h:1/0", "storage": "file:///x"}
        )
    assert "S3cr3t" not in str(caught.value)


@pytest.mark.parametrize("model", [BackupRequest, SecretRef])
def test_every_field_of_the_form_explains_itself(model: type[BackupRequest] | type[SecretRef]) -> None:
    properties = model.model_json_schema()["properties"]
    missing = [name for name, schema in properties.items() if not schema.get("description")]
    assert missing == []


def test_list_fields_say_what_several_entries_mean() -> None:
    fields = BackupRequest.model_fields
    assert "first location is the primary" in str(fields["storage"].description)
    assert "verified copy" in str(fields["storage"].description)
    assert "any one of their identities can decrypt" in str(fields["encrypt_to"].description)
    assert "exactly one" in str(fields["password"].description)
    secret = SecretRef.model_fields
    assert "not both" in str(secret["env"].description) and "not both" in str(
        secret["prefect_secret"].description
    )


@pytest.mark.parametrize(
    "second",
    ["file:///var/backups/redis", "file:///var/backups//redis/", "file://localhost/var/backups/redis"],
)
def test_a_location_named_twice_is_refused(second: str) -> None:
    """A 'copy' into the primary itself would be reported as a second copy that does not exist."""
    with pytest.raises(ConfigError, match="locations 1 and 2 are the same place"):
        build_request(
            instance="sessions", redis_url="redis://127.0.0.1:6379/0",
            storage=["file:///var/backups/redis", second],
        )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"redis_url": None}, "say which server to back up"),
        ({"kind": "aof"}, "kind aof copies the server's AOF files: name its target"),
        ({"kind": "aof", "target": "docker://redis", "mode": "bgsave"}, "mode bgsave and dump_path are for kind rdb"),
        ({"target": "redis://h:1"}, "give a live server's URL as redis_url"),
        ({"target": "docker://redis", "dump_path": "/x"}, "the target tells where its dump is"),
        ({"kind": "volume-snapshot"}, "not taken by redis-dr backup"),
        ({"target": "ftp://x"}, "target 'ftp://x' is not understood"),
    ],
)
def test_targets_and_kinds_that_do_not_fit_are_refused(fields: dict[str, object], expected: str) -> None:
    base: dict[str, object] = {"instance": "sessions", "redis_url": "redis://h:6379/0", "storage": "file:///x"}
    merged = {k: v for k, v in {**base, **fields}.items() if v is not None}
    with pytest.raises(ConfigError, match=expected) as caught:
        build_request(**merged)
    assert "\n" not in str(caught.value)


def test_a_target_alone_names_the_server() -> None:
    aof = build_request(instance="sessions", storage="file:///x", kind="aof", target="compose://shop/redis")
    assert aof.redis_url is None and aof.source() == "compose://shop/redis" and aof.how() == "AOF copy"
    bgsave = build_request(instance="sessions", storage="file:///x", mode="bgsave", target="docker://redis")
    assert bgsave.how() == "bgsave mode"


def test_environment_files_pass_file_targets_to_backups(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(
        "environment: staging\ninstances:\n"
        "  aof:\n    storage: file:///x\n    kind: aof\n    target: docker://redis\n"
        "    target_settings: {owner: '999:999'}\n"
        "  live:\n    redis_url: redis://h:1/0\n    storage: file:///x\n    target: redis://h:1/0\n"
    )
    env = load_environment(path)
    aof = env.backup_request("aof")
    assert aof.target == "docker://redis" and aof.target_settings is not None
    assert aof.target_settings.owner == "999:999"
    live = env.backup_request("live")  # a replay-only target says nothing more than redis_url
    assert live.target is None and live.redis_url == "redis://h:1/0"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"systemd_unit": "bad name!"}, "is not a systemd unit name"),
        ({"start_command": []}, "a command is a non-empty list"),
        ({"systemd_unit": "redis.service", "stop_command": ["true"]}, "either systemd_unit or start_command"),
        ({"owner": "redis"}, "owner"),
    ],
)
def test_target_settings_are_checked_when_the_environment_file_is_read(
    tmp_path: Path, settings: dict[str, object], message: str
) -> None:
    env_file = tmp_path / "env.yaml"
    instance = {"storage": ["file:///b"], "target": "local:///etc/redis/redis.conf", "target_settings": settings}
    env_file.write_text(yaml.safe_dump({"environment": "production", "instances": {"sessions": instance}}))
    with pytest.raises(ConfigError, match=message) as caught:
        load_environment(env_file)
    assert "\n" not in str(caught.value)
