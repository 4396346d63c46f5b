"""What a restore is asked to do: the typed request the restore flow takes (a form in the UI)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from redis_dr.config import (
    EnvironmentName,
    InstanceName,
    RedisUrl,
    SecretRef,
    StorageList,
    _check_redis_url,
    build_model,
    field_check,
)
from redis_dr.platforms.open import TargetSettings
from redis_dr.platforms.target import TARGET_HELP, TargetKind, parse_target
from redis_dr.restore.source import is_runbook_file


def _check_target(text: str) -> None:
    """A target name; a `redis://` one is a Redis URL without a password (flow parameters are stored)."""
    if parse_target(text).kind is TargetKind.REDIS:
        _check_redis_url(text)


TargetName = Annotated[str, AfterValidator(field_check(_check_target))]
_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,512}$")


class RestoreStrategy(StrEnum):
    """How the backup gets into the target."""

    FILE = "file"  # stop the target, place the data files, start it: the whole dataset
    REPLAY = "replay"  # write the backup's keys into the live target: no restart


def _check_pattern(pattern: str) -> str:
    if not _PATTERN.match(pattern):
        raise ValueError("--match takes a Redis glob pattern on one line, e.g. 'session:*'")
    return pattern


class RestoreRequest(BaseModel):
    """Everything the restore flow needs; validated before anything is touched. No secrets."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    instance: InstanceName = Field(description="Name of the instance whose backup is restored.")
    storage: StorageList = Field(
        default_factory=list,
        description="Where the backups are (file://, s3://, gs://); tried in order. "
        "Not needed when backup names a file."
    )
    backup: str = Field(
        default="latest",
        description="'latest', a backup id (20251015T140000Z), a UTC time (20251015-140000: the newest "
        "backup at or before it), or a runbook file (a path, s3:// or gs:// object, e.g. "
        "redis-backup-20251015-140000.rdb.gz).",
    )
    target: TargetName | None = Field(
        default=None, description=f"Where to restore: {TARGET_HELP}. Empty: the live server at redis_url."
    )
    target_settings: TargetSettings | None = Field(
        default=None, description="How to handle the target beyond its name (owner, systemd unit, commands)."
    )
    redis_url: RedisUrl | None = Field(
        default=None,
        description="How to reach the target's server when the target does not tell (no password here: "
        "see password). For replay it alone may name the live server.",
    )
    strategy: RestoreStrategy | None = Field(
        default=None,
        description="file: stop, place the data files, start (the whole dataset); replay: write the keys "
        "into the live server. Empty: file for local/docker/compose targets, replay for a URL.",
    )
    match: Annotated[str, AfterValidator(_check_pattern)] | None = Field(
        default=None, description="replay: only keys matching this pattern (e.g. session:*)."
    )
    db: int | None = Field(default=None, ge=0, le=15, description="replay: only this database.")
    flush: bool = Field(
        default=False,
        description="replay: first delete the target's keys in the restored databases (only those "
        "matching the pattern, with match).",
    )
    keep_existing: bool = Field(default=False, description="replay: keep keys the target already has.")
    checkpoint: bool = Field(
        default=True,
        description="Back up the target's current data first (labelled pre-restore), to the first "
        "storage location.",
    )
    allow_sentinel: bool = Field(
        default=False,
        description="file strategy on a master Sentinel watches: go on anyway (a failover during the "
        "stop can promote a replica with the old data). Prefer replay.",
    )
    password: SecretRef | None = Field(
        default=None, description="Where the target's password comes from (env or Prefect Secret block)."
    )
    age_identity: SecretRef | None = Field(
        default=None,
        description="Where the age identity of an encrypted backup comes from. Empty: REDIS_DR_AGE_IDENTITY.",
    )
    environment: EnvironmentName | None = Field(default=None, description="Environment of the instance.")
    protected: bool = Field(
        default=False, description="The environment is protected: a person must approve the plan."
    )
    approval_timeout_seconds: int = Field(
        default=3600, ge=10, description="How long a protected restore waits for approval."
    )

    @model_validator(mode="after")
    def _consistent(self) -> RestoreRequest:
        if self.target is None and self.redis_url is None:
            raise ValueError("say where to restore: a target or a redis_url")
        if not self.storage and not is_runbook_file(self.backup):
            raise ValueError("say where the backups are (storage), or name a backup file")
        kind = parse_target(self.target).kind if self.target else TargetKind.REDIS
        strategy = self.effective_strategy
        if strategy is RestoreStrategy.FILE and kind is TargetKind.REDIS:
            raise ValueError(
                "the file strategy needs the target's data directory: name a local://, docker:// or "
                "compose:// target, or use strategy replay"
            )
        replay_only = {
            "match": self.match,
            "db": self.db,
            "flush": self.flush or None,
            "keep_existing": self.keep_existing or None,
        }
        given = [name for name, value in replay_only.items() if value is not None]
        if strategy is RestoreStrategy.FILE and given:
            raise ValueError(f"{', '.join(given)} only apply to strategy replay (file restores everything)")
        if self.flush and self.keep_existing:
            raise ValueError("flush and keep_existing contradict each other: choose one")
        return self

    @property
    def effective_strategy(self) -> RestoreStrategy:
        """The strategy asked for, or the default for the target."""
        if self.strategy is not None:
            return self.strategy
        has_files = self.target is not None and parse_target(self.target).has_files
        return RestoreStrategy.FILE if has_files else RestoreStrategy.REPLAY


def build_restore_request(**fields: object) -> RestoreRequest:
    """Validate a restore request, turning validation errors into one clear line."""
    return build_model(RestoreRequest, **fields)
