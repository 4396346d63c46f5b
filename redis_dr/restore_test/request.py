"""What a restore test is asked to do: the typed request its flow takes (a form in the UI)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from redis_dr.config import (
    BackupSelector,
    EnvironmentName,
    InstanceName,
    RedisUrl,
    SecretRef,
    StorageList,
)
from redis_dr.platforms.open import TargetSettings
from redis_dr.restore.request import TargetName

_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENTRY_POINT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


def _check_image(image: str) -> str:
    if not _IMAGE.match(image):
        raise ValueError(f"{image!r} is not a container image name (e.g. redis:7.2)")
    return image


def _check_command(argv: list[str]) -> list[str]:
    if not argv or not argv[0]:
        raise ValueError("a check command is a non-empty list: the program, then its arguments")
    if any("\x00" in part for part in argv):
        raise ValueError("a check command's arguments cannot hold NUL bytes")
    return argv


def _check_env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return name


def _check_entry_point(text: str) -> str:
    if not _ENTRY_POINT.match(text):
        raise ValueError(f"{text!r} is not a Python entry point: write package.module:function")
    return text


class RestoreTestRequest(BaseModel):
    """Restore one backup into a throwaway Redis and check it; nothing of the source is touched."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    instance: InstanceName = Field(description="Name of the instance whose backup is tested.")
    storage: StorageList = Field(
        min_length=1,
        description="Where the backups are (file://, s3://, gs://); the first that holds the backup is read."
    )
    backup: BackupSelector = Field(
        default="latest",
        description="'latest', a backup id, a UTC time (the newest backup at or before it), or an age "
        "such as 7d-ago (the newest backup at least that old).",
    )
    check: Annotated[list[str], AfterValidator(_check_command)] | None = Field(
        default=None,
        description="A data check run against the throwaway server: program and arguments (no shell). "
        "Its URL is in REDIS_URL and {url}, its socket in REDIS_SOCKET and {socket}; exit 0 passes.",
    )
    check_entry_point: Annotated[str, AfterValidator(_check_entry_point)] | None = Field(
        default=None,
        description="A data check in Python, package.module:function, called with the throwaway's URL; "
        "it returns True/False or (ok, message), or raises.",
    )
    check_env: list[Annotated[str, AfterValidator(_check_env_name)]] = Field(
        default_factory=list,
        description="Environment variables of the worker passed to the check command (it gets only PATH, "
        "HOME, locale and time zone otherwise: never the worker's secrets unless named here).",
    )
    check_timeout_seconds: int = Field(default=300, ge=1, le=86400, description="How long the check may run.")
    image: Annotated[str, AfterValidator(_check_image)] | None = Field(
        default=None,
        description="Run the throwaway Redis in a container of this image (host network, loopback); "
        "empty: a local redis-server process.",
    )
    sample: int = Field(
        default=200, ge=0, le=100_000, description="Keys sampled from the backup and checked."
    )
    source_url: RedisUrl | None = Field(
        default=None,
        description="The live server the backup came from (no password: see password); its DBSIZE is "
        "compared with the restored one when it answers.",
    )
    source_target: TargetName | None = Field(
        default=None,
        description="The live server as a target (local://, docker://, compose://) when source_url is "
        "empty: its address and password come from its config. Only read, never touched.",
    )
    source_target_settings: TargetSettings | None = Field(
        default=None, description="How to read the live server's target beyond its name."
    )
    password: SecretRef | None = Field(
        default=None, description="Where the live server's password comes from (env or Prefect Secret)."
    )
    dbsize_tolerance: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="How far the restored key count may be from the live server's (a fraction: 0.05 = 5%).",
    )
    age_identity: SecretRef | None = Field(
        default=None,
        description="Where the age identity of an encrypted backup comes from. Empty: REDIS_DR_AGE_IDENTITY.",
    )
    environment: EnvironmentName | None = Field(default=None, description="Environment of the instance.")

    @model_validator(mode="after")
    def _one_check(self) -> RestoreTestRequest:
        if self.check is not None and self.check_entry_point is not None:
            raise ValueError("give a check command or a check entry point, not both")
        if self.source_url is not None and self.source_target is not None:
            raise ValueError("give the live server as source_url or as source_target, not both")
        return self
