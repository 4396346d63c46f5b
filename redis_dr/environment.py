"""Environment files: the one source of truth for an environment's instances, locations,
retention, schedules and Prefect settings (deployments/staging.yaml, production.yaml).

    environment: production
    protected: true                  # restores need a person's approval; no drills
    prefect: {work_pool: redis-dr, timezone: Europe/Berlin}
    schedules: {backup: "0 * * * *", validate: "0 3 * * *", ...}
    retention: {keep_hourly: 24, keep_daily: 7}        # every location without its own
    instances:
      sessions:
        target: compose://sessions/redis
        password: {prefect_secret: redis-sessions-password}
        storage:
          - s3://sva-backups/redis?region=eu-central-1
          - {url: "s3://sva-backups-eu-west-1/redis?region=eu-west-1", retention: {keep_monthly: 12}}

Secrets are referenced (an environment variable or a Prefect Secret block), never
written inline. Every request a flow takes for an instance is built here, so the
CLI's `--env-file` and the generated deployments say the same thing.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from cronsim import CronSim, CronSimError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from redis_dr.config import (
    BackupRequest,
    BackupSelector,
    EnvironmentName,
    SecretRef,
    SnapshotMode,
    StorageUrl,
    ZoneName,
    _distinct_locations,
    build_model,
    build_request,
    field_check,
    one_line,
    place,
)
from redis_dr.drill.request import DEFAULT_RTO_TARGET, DrillRequest
from redis_dr.durations import Duration
from redis_dr.errors import AccessDeniedError, ConfigError, NotFoundError
from redis_dr.manifest import BackupKind
from redis_dr.metrics.targets import MetricsTargets
from redis_dr.pipeline import Compression
from redis_dr.platforms.open import TargetSettings
from redis_dr.platforms.target import parse_target
from redis_dr.prune import PruneRequest
from redis_dr.replicate import ReplicateRequest
from redis_dr.restore.request import RestoreRequest, RestoreStrategy, build_restore_request
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.retention import RetentionPolicy
from redis_dr.run_tags import PROJECT_TAG
from redis_dr.storage.location import redact_url
from redis_dr.validate import ValidateRequest

_POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_RESERVED_TAG_PREFIXES = ("env:", "instance:")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,62}$")
_BLOCK_REF = re.compile(r"^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*$")


def _check_cron(text: str) -> None:
    fields = text.split()
    if len(fields) != 5:
        raise ConfigError(f"schedule {text!r} is not a cron line of 5 fields (minute hour day month weekday)")
    try:
        CronSim(text, _EPOCH)
    except CronSimError as exc:
        raise ConfigError(f"schedule {text!r} is not a valid cron line: {exc}") from None


def _check_pool(name: str) -> None:
    if not _POOL_NAME.match(name):
        raise ConfigError(f"work pool name {name!r} is not allowed: letters, digits, '.', '_' or '-'")


def _check_block_ref(text: str) -> None:
    if not _BLOCK_REF.match(text):
        raise ConfigError(
            f"notification block {text!r}: write <block-type>/<name>, e.g. custom-webhook/redis-dr-oncall"
        )


def _check_tag(tag: str) -> None:
    if not _TAG.match(tag):
        raise ConfigError(f"tag {tag!r} is not allowed: letters, digits, '.', '_', ':', '/' or '-'")
    if tag == PROJECT_TAG or tag.startswith(_RESERVED_TAG_PREFIXES):
        # `deploy` finds an environment's deployments, and a lease its holders, by these tags.
        raise ConfigError(
            f"tag {tag!r} is reserved: redis-dr sets {PROJECT_TAG}, env:<environment> and "
            "instance:<environment>/<instance> itself; choose another"
        )


_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
CronLine = Annotated[str, AfterValidator(field_check(_check_cron))]
PoolName = Annotated[str, AfterValidator(field_check(_check_pool))]
Tag = Annotated[str, AfterValidator(field_check(_check_tag))]


class PrefectSettings(BaseModel):
    """Where and how the environment's deployments run."""

    model_config = ConfigDict(extra="forbid")

    work_pool: PoolName = Field(
        default="redis-dr", description="Prefect work pool (type process) of the runs."
    )
    timezone: ZoneName = Field(default="UTC", description="Time zone of the cron schedules.")
    tags: list[Tag] = Field(default_factory=list, description="Extra tags on every deployment.")


class Schedules(BaseModel):
    """Cron lines (in the environment's time zone) of the scheduled flows; an empty one is not scheduled."""

    model_config = ConfigDict(extra="forbid")

    backup: CronLine | None = Field(default=None, description="RDB backup of every instance.")
    aof_backup: CronLine | None = Field(
        default=None, description="AOF backup of every instance whose target has files (appendonly yes)."
    )
    prune: CronLine | None = Field(default=None, description="Retention applied to every location.")
    replicate: CronLine | None = Field(
        default=None, description="Catch-up copy of backups missing from the other locations."
    )
    validate_: CronLine | None = Field(
        default=None, alias="validate", description="Validation of the newest backup (and a sample)."
    )
    restore_test: CronLine | None = Field(
        default=None, description="Restore test of a backup into a throwaway Redis (monthly: 0 4 1 * *)."
    )
    drill: CronLine | None = Field(
        default=None, description="RTO drill: kill the instance's target and restore it (needs drills)."
    )


class ReplicationSettings(BaseModel):
    """How the replicate flow judges the other locations."""

    model_config = ConfigDict(extra="forbid")

    max_lag: Duration | None = Field(
        default=None,
        description="Fail the run when a location's newest backup is older than the primary's by more.",
    )
    parallel: int = Field(default=4, ge=1, le=16, description="Copies at once.")


class ValidationSettings(BaseModel):
    """What the validate flow reads."""

    model_config = ConfigDict(extra="forbid")

    sample: int = Field(
        default=0, ge=0, le=100, description="Random older backups validated with the newest."
    )
    all_locations: bool = Field(
        default=False, description="Validate in every location, not only the primary."
    )


class RestoreTestSettings(BaseModel):
    """How the restore test of every instance runs."""

    model_config = ConfigDict(extra="forbid")

    backup: BackupSelector = Field(
        default="latest", description="Which backup: latest, an id, a UTC time, or an age such as 7d-ago."
    )
    check: list[str] | None = Field(
        default=None, description="A data check command run against the throwaway server (REDIS_URL)."
    )
    check_entry_point: str | None = Field(
        default=None, description="A data check in Python (package.module:function), given the URL."
    )
    image: str | None = Field(
        default=None, description="Run the throwaway Redis in a container of this image; else a process."
    )
    sample: int | None = Field(default=None, description="Keys sampled from the backup and checked.")
    dbsize_tolerance: float | None = Field(
        default=None, description="How far the restored key count may be from the live server's (0.05 = 5%)."
    )


class DrillSettings(BaseModel):
    """An environment's RTO drills (`drills: true`, or these settings)."""

    model_config = ConfigDict(extra="forbid")

    rto_target: Duration = Field(default=DEFAULT_RTO_TARGET, description="The recovery time objective.")
    strategy: RestoreStrategy = Field(default=RestoreStrategy.FILE, description="file or replay.")


def _drills(value: object) -> object:
    if value is True:
        return {}
    if value is False:
        return None
    return value


class NotificationSettings(BaseModel):
    """Where Prefect automations send word of failed runs and missed backups."""

    model_config = ConfigDict(extra="forbid")

    block: Annotated[str, AfterValidator(field_check(_check_block_ref))] | None = Field(
        default=None,
        description="A Prefect notification block, <block-type>/<name> (custom-webhook/redis-dr-oncall); "
        "the webhook's URL and secrets stay in the block.",
    )


class Location(BaseModel):
    """One storage location of an instance, with its own retention (else the environment's)."""

    model_config = ConfigDict(extra="forbid")

    url: StorageUrl
    retention: RetentionPolicy | None = None


def _location(value: object) -> object:
    return {"url": value} if isinstance(value, str) else value


def _locations(value: object) -> object:
    items = [value] if isinstance(value, str | dict) else value
    return [_location(item) for item in items] if isinstance(items, list) else items


def _distinct(locations: list[Location]) -> list[Location]:
    _distinct_locations([location.url for location in locations])
    return locations


Locations = Annotated[list[Location], BeforeValidator(_locations), AfterValidator(_distinct)]


class InstanceConfig(BaseModel):
    """One instance in an environment file."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str | None = None
    storage: Locations = Field(min_length=1)
    kind: BackupKind = BackupKind.RDB
    mode: SnapshotMode = SnapshotMode.STREAM
    compression: Compression = Compression.ZSTD
    encrypt_to: list[str] = Field(default_factory=list)
    password: SecretRef | None = None
    #: Where the age identity of encrypted backups comes from (restores and validation).
    age_identity: SecretRef | None = None
    dump_path: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    #: Where the instance runs, for restores and file-level backups: local://, docker://, compose://
    #: (a redis:// target, for replay restores, is not passed to backups: redis_url says the same).
    target: str | None = None
    target_settings: TargetSettings | None = None

    @property
    def urls(self) -> list[str]:
        """The storage URLs, primary first."""
        return [location.url for location in self.storage]

    @property
    def replicates(self) -> bool:
        """It has locations to copy its backups to."""
        return len(self.storage) > 1

    @property
    def has_files(self) -> bool:
        """The target gives access to the server's files (AOF backups, file restores)."""
        return self.target is not None and parse_target(self.target).has_files


class EnvironmentConfig(BaseModel):
    """An environment file: named instances of one environment (staging, production...)."""

    model_config = ConfigDict(extra="forbid")

    environment: EnvironmentName
    #: Restores need a person's approval (in the Prefect UI, or on the terminal).
    protected: bool = False
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    schedules: Schedules = Field(default_factory=Schedules)
    retention: RetentionPolicy | None = None
    replication: ReplicationSettings = Field(default_factory=ReplicationSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    restore_test: RestoreTestSettings = Field(default_factory=RestoreTestSettings)
    #: RTO drills are allowed (`true`, or settings); never on a protected environment.
    drills: Annotated[DrillSettings | None, BeforeValidator(_drills)] = None
    metrics: MetricsTargets = Field(default_factory=MetricsTargets)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    instances: dict[str, InstanceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_drills_when_protected(self) -> EnvironmentConfig:
        if self.protected and self.drills is not None:
            raise ValueError("drills kill the server: a protected environment cannot allow them")
        if self.schedules.drill and self.drills is None:
            raise ValueError("schedules.drill is set but drills are not allowed: add 'drills: true'")
        return self

    def instance(self, name: str) -> InstanceConfig:
        """One named instance; NotFoundError listing the known ones."""
        if name not in self.instances:
            known = ", ".join(sorted(self.instances)) or "none"
            raise NotFoundError(f"no instance {name!r} in environment {self.environment} (known: {known})")
        return self.instances[name]

    def retention_of(self, location: Location) -> RetentionPolicy | None:
        """A location's own retention, else the environment's (None: keep everything)."""
        return location.retention or self.retention

    def prunes(self, config: InstanceConfig) -> bool:
        """Some location of the instance has a retention policy (else nothing of it is pruned)."""
        return any(self.retention_of(location) for location in config.storage)

    def backup_request(self, instance: str, **overrides: object) -> BackupRequest:
        """The backup request for one named instance, with optional overrides."""
        config = self.instance(instance)
        fields = config.model_dump(exclude_none=True, exclude={"storage", "age_identity"})
        fields["storage"] = config.urls
        if config.target is not None and "://" in config.target and not config.has_files:
            fields.pop("target")
            fields.pop("target_settings", None)
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return build_request(instance=instance, environment=self.environment, **fields)

    def restore_fields(self, instance: str) -> dict[str, Any]:
        """What the environment says of a restore of one instance (the request adds the rest)."""
        config = self.instance(instance)
        return {
            "instance": instance,
            "storage": config.urls,
            "target": config.target,
            "target_settings": config.target_settings,
            # Without a target, the live server is restored by replay; with one, the target tells.
            "redis_url": config.redis_url if config.target is None else None,
            "password": config.password,
            "age_identity": config.age_identity,
            "environment": self.environment,
            "protected": self.protected,
        }

    def restore_request(self, instance: str, **overrides: object) -> RestoreRequest:
        """The restore request for one named instance (latest backup), with optional overrides."""
        fields = {**self.restore_fields(instance), **{k: v for k, v in overrides.items() if v is not None}}
        return build_restore_request(**{k: v for k, v in fields.items() if v is not None})

    def prune_request(
        self, instance: str, *, apply: bool = False, storage: str | None = None
    ) -> PruneRequest:
        """The prune of every location of the instance that has a retention policy (or only `storage`).

        A location without a policy keeps everything and is not pruned; naming one is refused.
        """
        config = self.instance(instance)
        chosen = [loc for loc in config.storage if storage is None or place(loc.url) == place(storage)]
        if storage is not None and not chosen:
            raise ConfigError(f"{redact_url(storage)} is not a location of {instance} in {self.environment}")
        located = [(loc.url, self.retention_of(loc)) for loc in chosen]
        if storage is not None and located[0][1] is None:
            raise ConfigError(
                f"{redact_url(storage)} has no retention policy in {self.environment}: nothing to prune"
            )
        if not self.prunes(config):
            raise ConfigError(
                f"no location of {instance} in {self.environment} has a retention policy: nothing to prune "
                "(give the file a retention: section, or a location its own)"
            )
        return build_model(
            PruneRequest,
            instance=instance,
            environment=self.environment,
            locations=[{"url": url, "policy": policy} for url, policy in located if policy is not None],
            apply=apply,
        )

    def replicate_request(self, instance: str) -> ReplicateRequest:
        """Copies from the primary to every other location of the instance (with their retention)."""
        config = self.instance(instance)
        if not config.replicates:
            raise ConfigError(f"{instance} in {self.environment} has one location: nothing to replicate to")
        return build_model(
            ReplicateRequest,
            instance=instance,
            environment=self.environment,
            source=config.urls[0],
            destinations=[{"url": loc.url, "policy": self.retention_of(loc)} for loc in config.storage[1:]],
            max_lag=self.replication.max_lag,
            parallel=self.replication.parallel,
        )

    def validate_request(self, instance: str, **overrides: object) -> ValidateRequest:
        """Validation of the newest backup (and the environment's sample) at the primary, or everywhere."""
        config = self.instance(instance)
        fields: dict[str, object] = {
            "instance": instance,
            "environment": self.environment,
            "storage": config.urls if self.validation.all_locations else config.urls[:1],
            "sample": self.validation.sample,
            "age_identity": config.age_identity,
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return build_model(ValidateRequest, **fields)

    def restore_test_request(self, instance: str, **overrides: object) -> RestoreTestRequest:
        """The restore test of one instance: the environment's settings, the live server to compare."""
        config = self.instance(instance)
        settings = self.restore_test.model_dump(exclude_none=True)
        fields: dict[str, object] = {
            "instance": instance,
            "environment": self.environment,
            "storage": config.urls,
            "source_url": config.redis_url,
            "source_target": config.target if config.redis_url is None else None,
            "source_target_settings": config.target_settings if config.redis_url is None else None,
            "password": config.password,
            "age_identity": config.age_identity,
            **settings,
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return build_model(RestoreTestRequest, **{k: v for k, v in fields.items() if v is not None})

    def drill_request(self, instance: str, **overrides: object) -> DrillRequest:
        """The RTO drill of one instance; refused where the environment does not allow drills."""
        config = self.instance(instance)
        if self.protected:
            raise ConfigError(f"environment {self.environment} is protected: drills are refused there")
        if self.drills is None:
            raise ConfigError(
                f"environment {self.environment} does not allow drills: add 'drills: true' to its file"
            )
        if not config.has_files:
            raise ConfigError(
                f"{instance} in {self.environment} has no local://, docker:// or compose:// target: "
                "a drill kills and restores the target"
            )
        fields: dict[str, object] = {
            "instance": instance,
            "environment": self.environment,
            "storage": config.urls,
            "target": config.target,
            "target_settings": config.target_settings,
            "redis_url": config.redis_url,
            "password": config.password,
            "age_identity": config.age_identity,
            "rto_target": self.drills.rto_target,
            "strategy": self.drills.strategy,
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return build_model(DrillRequest, **{k: v for k, v in fields.items() if v is not None})


def load_environment(path: str | os.PathLike[str]) -> EnvironmentConfig:
    """Read and validate an environment file."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise NotFoundError(f"environment file {file} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"environment file {file} is a directory: name a YAML file") from None
    except PermissionError:
        raise AccessDeniedError(f"environment file {file} cannot be read: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError(f"environment file {file} is not text (UTF-8 YAML): name the YAML file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"environment file {file} is not valid YAML: {one_line_yaml(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"environment file {file} is not a mapping of settings (environment:, instances:)")
    try:
        return EnvironmentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"environment file {file}: {one_line(exc)}") from None


def one_line_yaml(exc: yaml.YAMLError) -> str:
    """A YAML error on one line, with its position."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else str(problem)
