"""Typed configuration: what to back up, where to, and how.

A `BackupRequest` is what the backup flow takes (the Prefect UI renders it as a
form). An environment file (YAML) describes named instances so that a
deployment or a person can say "back up `sessions` in production" and nothing
more. Secrets are referenced, never written inline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from redis_dr.catalog import check_selector
from redis_dr.errors import ConfigError
from redis_dr.manifest import INSTANCE_PATTERN, BackupKind, validate_instance_name
from redis_dr.pipeline import Compression, parse_recipient
from redis_dr.platforms.open import TargetSettings
from redis_dr.platforms.target import TargetKind, parse_target
from redis_dr.redis.connection import RedisEndpoint, has_password
from redis_dr.storage.location import StorageLocation, redact_url

M = TypeVar("M", bound=BaseModel)

PASSWORD_ENV = "REDIS_PASSWORD"
AGE_IDENTITY_ENV = "REDIS_DR_AGE_IDENTITY"


class SnapshotMode(StrEnum):
    """How the RDB snapshot is taken."""

    STREAM = "stream"  # replication stream (SYNC): no access to the server's disk needed
    BGSAVE = "bgsave"  # BGSAVE, then read dump.rdb from the server's data directory


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def field_check(check: Callable[[str], object]) -> Callable[[str], str]:
    """A pydantic validator from one of our checks: its ConfigError becomes a field error."""

    def validate(value: str) -> str:
        try:
            check(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    return validate


class SecretRef(BaseModel):
    """Where a secret comes from: an environment variable or a Prefect Secret block (exactly one)."""

    model_config = ConfigDict(extra="forbid")

    env: str | None = Field(
        default=None,
        description="Name of an environment variable of the worker that holds the secret "
        "(e.g. REDIS_PASSWORD). Give this or prefect_secret, not both.",
    )
    prefect_secret: str | None = Field(
        default=None,
        description="Name of a Prefect Secret block that holds the secret. Give this or env, not both.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.prefect_secret is None):
            raise ValueError("a secret reference names exactly one of 'env' or 'prefect_secret'")
        if self.env is not None and not _ENV_NAME.match(self.env):
            raise ValueError(f"{self.env!r} is not an environment variable name")
        if self.prefect_secret is not None and not _BLOCK_NAME.match(self.prefect_secret):
            raise ValueError(
                f"{self.prefect_secret!r} is not a Secret block name (lowercase letters, digits, dashes)"
            )
        return self

    def describe(self) -> str:
        """Where the secret is read from, for messages (never the value)."""
        return f"env {self.env}" if self.env else f"Prefect Secret block {self.prefect_secret!r}"


def as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _check_redis_url(url: str) -> None:
    if has_password(url):
        raise ConfigError(
            "the Redis URL holds a password: put it in REDIS_PASSWORD or a Prefect Secret block instead"
        )
    RedisEndpoint.from_url(url, env={})


def _check_name(kind: str) -> Callable[[str], None]:
    def check(name: str) -> None:
        if not INSTANCE_PATTERN.match(name):
            raise ConfigError(
                f"{kind} name {name!r} is not allowed: use lowercase letters, digits, '.', '_' or '-'"
            )

    return check


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(f"label {key!r} is not allowed: use letters, digits, '.', '_' or '-' (max 63)")
        if "\n" in value or len(value) > 256:
            raise ValueError(f"label {key!r}: values are one line of at most 256 characters")
    return labels


def check_zone(name: str) -> None:
    """An IANA time zone name (Europe/Berlin, UTC), else ConfigError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"time zone {name!r} is unknown: use an IANA name such as Europe/Berlin or UTC"
        ) from None


RedisUrl = Annotated[str, AfterValidator(field_check(_check_redis_url))]
StorageUrl = Annotated[str, AfterValidator(field_check(StorageLocation.parse))]
#: Which backup: `latest`, an id, a UTC time (the newest at or before it), or an age (`7d-ago`).
BackupSelector = Annotated[str, AfterValidator(field_check(check_selector))]
Recipient = Annotated[str, AfterValidator(field_check(parse_recipient))]
InstanceName = Annotated[str, AfterValidator(field_check(validate_instance_name))]
EnvironmentName = Annotated[str, AfterValidator(field_check(_check_name("environment")))]
Labels = Annotated[dict[str, str], AfterValidator(_check_labels)]
BackupTarget = Annotated[str, AfterValidator(field_check(parse_target))]
ZoneName = Annotated[str, AfterValidator(field_check(check_zone))]


def place(url: str) -> tuple[str, str, str, str | None]:
    """What makes two storage URLs the same place, whatever their spelling (options, slashes)."""
    parsed = StorageLocation.parse(url)
    return parsed.scheme, parsed.bucket_or_path, parsed.prefix, parsed.options.get("endpoint")


def _distinct_locations(urls: list[str]) -> list[str]:
    """Refuse a location named twice (in any spelling): its 'copy' would be the backup itself."""
    seen: dict[tuple[str, str, str, str | None], int] = {}
    for position, url in enumerate(urls, start=1):
        location = place(url)
        if location in seen:
            raise ValueError(
                f"locations {seen[location]} and {position} are the same place ({redact_url(url)}): "
                "a second copy needs a second location"
            )
        seen[location] = position
    return urls


StorageList = Annotated[list[StorageUrl], BeforeValidator(as_list), AfterValidator(_distinct_locations)]

_STORAGE_HELP = (
    "Where to store: file:///path, s3://bucket/prefix?region=..., gs://bucket/prefix. "
    "The first location is the primary, where the backup is committed; every other location "
    "receives a verified copy of it."
)
_RECIPIENTS_HELP = (
    "age recipients (age1... or ssh-ed25519/ssh-rsa public keys) to encrypt to; any one of their "
    "identities can decrypt. Empty: not encrypted."
)
_PASSWORD_HELP = (
    "Where the Redis password comes from: an environment variable of the worker or a Prefect "
    "Secret block (exactly one). Empty: REDIS_PASSWORD if set, else no password."
)
_LABELS_HELP = "Labels recorded in the manifest (e.g. reason: pre-upgrade)."


class BackupRequest(BaseModel):
    """Everything the backup flow needs to back up one Redis instance.

    Every field is validated here, so bad input is refused before anything runs,
    from the terminal and from the Prefect UI's form alike. No field holds a secret.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    instance: InstanceName = Field(
        description="Name of the instance (lowercase letters, digits, '.', '_', '-'); "
        "backups are stored under it."
    )
    redis_url: RedisUrl | None = Field(
        default=None,
        description="redis://[user@]host:port/db, rediss://... for TLS (?ssl_ca_certs=/path), or "
        "unix:///path.sock. No password here: see password. Empty: the address the target tells.",
    )
    storage: StorageList = Field(min_length=1, description=_STORAGE_HELP)
    kind: BackupKind = Field(
        default=BackupKind.RDB,
        description="rdb: a snapshot of the dataset; aof: a copy of the server's multi-part AOF "
        "(Redis 7+, appendonly yes; needs a local://, docker:// or compose:// target).",
    )
    target: BackupTarget | None = Field(
        default=None,
        description="Where the server and its files are: local:///path/to/redis.conf, docker://CONTAINER "
        "or compose://PROJECT/SERVICE. Needed for kind aof, and for bgsave when the data dir is not "
        "on this host; it also tells the server's address when redis_url is empty.",
    )
    target_settings: TargetSettings | None = Field(
        default=None, description="How to handle the target beyond its name (owner, systemd unit, commands)."
    )
    mode: SnapshotMode = Field(
        default=SnapshotMode.STREAM,
        description="kind rdb: stream: replication stream, no access to the server's disk needed; "
        "bgsave: BGSAVE, then read dump.rdb on this host (or through the target).",
    )
    compression: Compression = Field(
        default=Compression.ZSTD, description="zstd (level 1), gzip (.rdb.gz compatible) or none."
    )
    encrypt_to: list[Recipient] = Field(default_factory=list, description=_RECIPIENTS_HELP)
    password: SecretRef | None = Field(default=None, description=_PASSWORD_HELP)
    dump_path: str | None = Field(
        default=None, description="bgsave mode: path of dump.rdb if CONFIG GET cannot tell."
    )
    environment: EnvironmentName | None = Field(
        default=None,
        description="Environment the instance belongs to (e.g. production); recorded in the manifest.",
    )
    labels: Labels = Field(default_factory=dict, description=_LABELS_HELP)

    @model_validator(mode="after")
    def _consistent(self) -> BackupRequest:
        if self.redis_url is None and self.target is None:
            raise ValueError("say which server to back up: a redis_url, or a target")
        kind = parse_target(self.target).kind if self.target else None
        if kind is TargetKind.REDIS:
            raise ValueError(
                "a backup target names where the server's files are (local://, docker://, compose://); "
                "give a live server's URL as redis_url"
            )
        if self.kind is BackupKind.VOLUME_SNAPSHOT:
            raise ValueError("kind volume-snapshot is not taken by redis-dr backup: use rdb or aof")
        if self.kind is BackupKind.AOF:
            if kind is None:
                raise ValueError(
                    "kind aof copies the server's AOF files: name its target (local://, docker://, compose://)"
                )
            if self.mode is SnapshotMode.BGSAVE or self.dump_path is not None:
                raise ValueError("kind aof copies the AOF files: mode bgsave and dump_path are for kind rdb")
        if self.target is not None and self.dump_path is not None:
            raise ValueError("dump_path is for a server without a target: the target tells where its dump is")
        return self

    def how(self) -> str:
        """'stream mode', 'bgsave mode' or 'AOF copy', for messages."""
        return "AOF copy" if self.kind is BackupKind.AOF else f"{self.mode.value} mode"

    def source(self) -> str:
        """What is backed up, for messages: the target, else the Redis URL (no password in either)."""
        return str(parse_target(self.target)) if self.target else str(self.redis_url)


def build_model(model: type[M], **fields: object) -> M:
    """Validate a request model, turning validation errors into one clear line."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError(one_line(exc)) from None


def build_request(**fields: object) -> BackupRequest:
    """Validate a backup request, turning validation errors into one clear line."""
    return build_model(BackupRequest, **fields)


def one_line(exc: ValidationError) -> str:
    """The first validation problem as one readable line."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "value"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["loc"] and message.startswith(f"{error['loc'][0]} "):
        return message  # it names the field already ("instance name 'X' is not allowed ...")
    return f"invalid {where}: {message}"
