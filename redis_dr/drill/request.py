"""What a drill is asked to do: the typed request its flow takes (a form in the UI)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from redis_dr.config import EnvironmentName, InstanceName, RedisUrl, SecretRef, StorageList
from redis_dr.durations import Duration
from redis_dr.platforms.open import TargetSettings
from redis_dr.platforms.target import TargetKind, parse_target
from redis_dr.restore.request import RestoreStrategy, TargetName

#: The runbooks' recovery time objective.
DEFAULT_RTO_TARGET = timedelta(minutes=5)


class DrillRequest(BaseModel):
    """Kill a target, restore its latest backup, verify, and time it; never on a protected environment."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    instance: InstanceName = Field(description="Name of the instance whose target is killed and restored.")
    storage: StorageList = Field(
        min_length=1,
        description="Where the backups are (file://, s3://, gs://); the drill's history is kept in the first."
    )
    target: TargetName = Field(
        description="The server that is killed and restored: local:///path/redis.conf, docker://CONTAINER "
        "or compose://PROJECT/SERVICE."
    )
    target_settings: TargetSettings | None = Field(
        default=None, description="How to handle the target beyond its name (owner, systemd unit, commands)."
    )
    redis_url: RedisUrl | None = Field(
        default=None,
        description="How to reach the server when the target does not tell (no password).",
    )
    password: SecretRef | None = Field(
        default=None, description="Where the target's password comes from (env or Prefect Secret block)."
    )
    strategy: RestoreStrategy = Field(
        default=RestoreStrategy.FILE,
        description="file: place the backup's files and start the server; replay: start the server and "
        "write the backup's keys into it.",
    )
    rto_target: Duration = Field(
        default=DEFAULT_RTO_TARGET,
        description="The recovery time objective the drill is judged by.",
    )
    age_identity: SecretRef | None = Field(
        default=None,
        description="Where the age identity of an encrypted backup comes from. Empty: REDIS_DR_AGE_IDENTITY.",
    )
    environment: EnvironmentName | None = Field(default=None, description="Environment of the instance.")
    protected: bool = Field(
        default=False, description="The environment is protected: the drill is refused (it kills the server)."
    )

    @model_validator(mode="after")
    def _killable(self) -> DrillRequest:
        if parse_target(self.target).kind is TargetKind.REDIS:
            raise ValueError(
                "a drill kills the target's process: name a local://, docker:// or compose:// target, "
                "not a redis:// URL"
            )
        if self.rto_target <= timedelta(0):
            raise ValueError("rto_target must be longer than zero")
        return self
