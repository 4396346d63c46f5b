"""Typed configuration: what to back up, where to, and how.

A `BackupRequest` is what the backup flow takes (the Prefect UI renders it as a
form). An environment file (YAML) describes named instances so that a
deployment or a person can say "back up `sessions` in production" and nothing
more. Secrets are referenced, never written inline.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from redis_dr.errors import ConfigError, NotFoundError
from redis_dr.manifest import validate_instance_name
from redis_dr.pipeline import Compression

PASSWORD_ENV = "REDIS_PASSWORD"
AGE_IDENTITY_ENV = "REDIS_DR_AGE_IDENTITY"


class SnapshotMode(StrEnum):
    """How the RDB snapshot is taken."""

    STREAM = "stream"  # replication stream (SYNC): no access to the server's disk needed
    BGSAVE = "bgsave"  # BGSAVE, then read dump.rdb from the server's data directory


class SecretRef(BaseModel):
    """Where a secret comes from: an environment variable or a Prefect Secret block."""

    model_config = ConfigDict(extra="forbid")

    env: str | None = None
    prefect_secret: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.prefect_secret is None):
            raise ValueError("a secret reference names exactly one of 'env' or 'prefect_secret'")
        return self

    def describe(self) -> str:
        """Where the secret is read from, for messages (never the value)."""
        return f"env {self.env}" if self.env else f"Prefect Secret block {self.prefect_secret!r}"


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _check_no_password(url: str) -> str:
    from urllib.parse import urlsplit

    if urlsplit(url).password:
        raise ValueError("the Redis URL holds a password: put it in REDIS_PASSWORD or a Secret block instead")
    return url


class BackupRequest(BaseModel):
    """Everything the backup flow needs to back up one Redis instance."""

    model_config = ConfigDict(extra="forbid")

    instance: str = Field(description="Name of the instance; backups are stored under it.")
    redis_url: Annotated[str, BeforeValidator(lambda v: _check_no_password(str(v)))] = Field(
        description="redis://[user@]host:port/db, rediss:// for TLS. No password here."
    )
    storage: Annotated[list[str], BeforeValidator(_as_list)] = Field(
        min_length=1,
        description="Where to store: file:///path, s3://bucket/prefix?region=..., gs://bucket/prefix.",
    )
    mode: SnapshotMode = SnapshotMode.STREAM
    compression: Compression = Compression.ZSTD
    encrypt_to: list[str] = Field(default_factory=list, description="age recipients (age1...).")
    password: SecretRef | None = Field(
        default=None, description="Where the Redis password comes from (default: REDIS_PASSWORD)."
    )
    dump_path: str | None = Field(
        default=None, description="bgsave mode: path of dump.rdb if CONFIG GET cannot tell."
    )
    environment: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_instance(self) -> BackupRequest:
        validate_instance_name(self.instance)
        return self


class InstanceConfig(BaseModel):
    """One instance in an environment file."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str
    storage: Annotated[list[str], BeforeValidator(_as_list)] = Field(min_length=1)
    mode: SnapshotMode = SnapshotMode.STREAM
    compression: Compression = Compression.ZSTD
    encrypt_to: list[str] = Field(default_factory=list)
    password: SecretRef | None = None
    dump_path: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class EnvironmentConfig(BaseModel):
    """An environment file: named instances of one environment (staging, production...)."""

    model_config = ConfigDict(extra="forbid")

    environment: str
    instances: dict[str, InstanceConfig]

    def backup_request(self, instance: str, **overrides: object) -> BackupRequest:
        """The backup request for one named instance, with optional overrides."""
        if instance not in self.instances:
            known = ", ".join(sorted(self.instances)) or "none"
            raise NotFoundError(
                f"no instance {instance!r} in environment {self.environment} (known: {known})"
            )
        fields = self.instances[instance].model_dump(exclude_none=True)
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return build_request(instance=instance, environment=self.environment, **fields)


def build_request(**fields: object) -> BackupRequest:
    """Validate a backup request, turning validation errors into one clear line."""
    try:
        return BackupRequest.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError(one_line(exc)) from None


def one_line(exc: ValidationError) -> str:
    """The first validation problem as one readable line."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "value"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"invalid {where}: {message}"


def load_environment(path: str | os.PathLike[str]) -> EnvironmentConfig:
    """Read and validate an environment file."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise NotFoundError(f"environment file {file} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"environment file {file} is not valid YAML: {exc}") from None
    try:
        return EnvironmentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"environment file {file}: {one_line(exc)}") from None
