"""Replication: every complete backup of one location that another location lacks, copied there.

The request names a source and its destinations; each destination may have its
own retention policy, and then it receives only the backups that policy keeps
(a second region that keeps 12 monthlies must not get every hourly backup back
after each prune there). The copies themselves are `redis_dr.copy.copy_backup`:
verified, manifest last, idempotent and resumable. This module plans them and
judges the result: what to copy, oldest first; how far each destination lags
behind the source; which problems fail the run. No Prefect here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from redis_dr.catalog import Listing
from redis_dr.config import EnvironmentName, InstanceName, StorageUrl, place
from redis_dr.durations import Duration, format_duration
from redis_dr.manifest import Manifest
from redis_dr.retention import RetentionPolicy, decide
from redis_dr.storage.location import redact_url
from redis_dr.units import human_size

#: The most copies one run makes at once.
MAX_PARALLEL = 16


def _url_alone(value: object) -> object:
    """A destination given as its URL alone (`"s3://..."`) has no policy."""
    return {"url": value} if isinstance(value, str) else value


class Destination(BaseModel):
    """One location that receives copies, and what it keeps."""

    model_config = ConfigDict(extra="forbid")

    url: StorageUrl = Field(
        description="Where the copies go: file:///path, s3://bucket/prefix?region=..., gs://bucket/prefix."
    )
    policy: RetentionPolicy | None = Field(
        default=None,
        description="The retention policy of this location. Given: only the backups it would keep are "
        "copied (what its prune removes is not brought back). Empty: every backup is copied.",
    )


class ReplicateRequest(BaseModel):
    """Everything the replicate flow needs: one instance, its source location, its destinations.

    No field holds a secret: credentials come from the storage SDKs' usual sources.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    instance: InstanceName = Field(description="Name of the instance whose backups are copied.")
    environment: EnvironmentName | None = Field(
        default=None, description="Environment the instance belongs to (e.g. production)."
    )
    source: StorageUrl = Field(
        description="The location the backups are copied from (usually the primary): file:///path, "
        "s3://bucket/prefix?region=..., gs://bucket/prefix."
    )
    destinations: list[Annotated[Destination, BeforeValidator(_url_alone)]] = Field(
        min_length=1,
        description="The locations that receive every complete backup they lack, each with its own "
        "retention policy if it has one.",
    )
    max_lag: Duration | None = Field(
        default=None,
        description="Fail the run when a destination's newest backup is still older than the source's "
        "by more than this after copying, e.g. 2h. Empty: no limit.",
    )
    parallel: int = Field(
        default=4, ge=1, le=MAX_PARALLEL, description=f"Copies made at once (1 to {MAX_PARALLEL})."
    )

    @model_validator(mode="after")
    def _distinct(self) -> ReplicateRequest:
        seen = {place(self.source): "the source"}
        for position, destination in enumerate(self.destinations, start=1):
            where = place(destination.url)
            if where in seen:
                raise ValueError(
                    f"destination {position} ({redact_url(destination.url)}) is the same place as "
                    f"{seen[where]}: a copy needs another location"
                )
            seen[where] = f"destination {position}"
        return self


# -- planning -------------------------------------------------------------------------


def missing_backups(source: Listing, destination: Listing) -> list[str]:
    """Ids of the source's complete backups the destination does not list, oldest first."""
    present = {manifest.id for manifest in destination.manifests}
    return sorted(manifest.id for manifest in source.manifests if manifest.id not in present)


def plan_replication(
    source: Listing, destination: Listing, policy: RetentionPolicy | None, now: datetime
) -> list[str]:
    """The ids to copy to one destination, oldest first: the complete backups it lacks, and with a
    policy only those the policy keeps among everything both locations hold (pure)."""
    missing = missing_backups(source, destination)
    if policy is None or not missing:
        return missing
    both = {manifest.id: manifest for manifest in [*destination.manifests, *source.manifests]}
    kept = {decision.backup_id for decision in decide(list(both.values()), policy, now) if decision.keep}
    return [backup_id for backup_id in missing if backup_id in kept]


def replication_lag(source: Sequence[Manifest], destination: Sequence[Manifest], now: datetime) -> timedelta:
    """How far the destination is behind: the source's newest backup time minus the destination's.

    Zero when the destination's newest is as new or newer, or the source has none;
    everything the source holds (the age of its oldest backup) when the destination has none.
    """
    if not source:
        return timedelta(0)
    newest = max(manifest.created_at for manifest in source)
    if not destination:
        return max(now - min(manifest.created_at for manifest in source), timedelta(0))
    return max(newest - max(manifest.created_at for manifest in destination), timedelta(0))


def in_words(lag: timedelta | float) -> str:
    """'3h10m', '45s', '0s': a lag to whole seconds."""
    seconds = lag.total_seconds() if isinstance(lag, timedelta) else lag
    return format_duration(timedelta(seconds=round(seconds)))


# -- results --------------------------------------------------------------------------


class DestinationResult(BaseModel):
    """What replication did at one destination."""

    url: str = Field(description="The destination (secrets redacted).")
    policy: str | None = Field(default=None, description="Its retention policy, described; None: keeps all.")
    missing: int = Field(default=0, description="Complete backups of the source it lacked.")
    planned: int = Field(default=0, description="Of those, the backups to copy (what its policy keeps).")
    copied: list[str] = Field(default_factory=list, description="Backups copied in this run.")
    bytes: int = Field(default=0, description="Bytes copied in this run.")
    already_present: list[str] = Field(
        default_factory=list, description="Planned backups found complete there already (another run)."
    )
    failed: list[str] = Field(default_factory=list, description="One line per failure: what and why.")
    unreadable: list[str] = Field(
        default_factory=list,
        description="Manifests there that could not be read: a copy under one of their ids is refused "
        "(a failure) until a person fixes or removes it.",
    )
    lag_before_seconds: int | None = Field(
        default=None, description="Lag before copying, in seconds (None: it could not be listed)."
    )
    lag_after_seconds: int | None = Field(
        default=None, description="Lag after copying, in seconds (None: it could not be listed)."
    )


class ReplicateResult(BaseModel):
    """What one replication run did, per destination, and why it failed if it did."""

    instance: str
    source: str = Field(description="The source location (secrets redacted).")
    source_backups: int = Field(description="Complete backups listed at the source.")
    unreadable: list[str] = Field(
        default_factory=list, description="Manifests at the source that could not be read (not copied)."
    )
    max_lag_seconds: int | None = None
    destinations: list[DestinationResult]
    problems: list[str] = Field(default_factory=list, description="Why the run failed; empty on success.")


def seconds_of(lag: timedelta) -> int:
    """A lag in whole seconds."""
    return round(lag.total_seconds())


def lag_problem(destination: DestinationResult, limit: timedelta | None) -> str | None:
    """'s3://dr/x lags 3h10m behind the source (limit 2h)', or None within the limit."""
    lag = destination.lag_after_seconds
    if limit is None or lag is None or lag <= limit.total_seconds():
        return None
    return f"{destination.url} lags {in_words(lag)} behind the source (limit {in_words(limit)})"


def judge(result: ReplicateResult, limit: timedelta | None) -> list[str]:
    """Every reason the run fails: unreadable source manifests, failed copies, lags over the limit."""
    problems = [f"unreadable at the source, not copied: {problem}" for problem in result.unreadable]
    for destination in result.destinations:
        problems += [f"{destination.url}: {failure}" for failure in destination.failed]
        over = lag_problem(destination, limit)
        if over is not None:
            problems.append(over)
    return problems


def destination_line(destination: DestinationResult) -> str:
    """'gs://b/p: copied 3 backup(s), 12.0 MiB; 1 already present; 0 failed; lag 0s (was 3h10m)'."""
    skipped = destination.missing - destination.planned
    kept = f" ({skipped} its policy would not keep, not copied)" if skipped else ""
    lags = "lag unknown"
    if destination.lag_after_seconds is not None:
        lags = f"lag {in_words(destination.lag_after_seconds)}"
        if destination.lag_before_seconds != destination.lag_after_seconds:
            lags += f" (was {in_words(destination.lag_before_seconds or 0)})"
    return (
        f"{destination.url}: copied {len(destination.copied)} backup(s){kept}, "
        f"{human_size(destination.bytes)}; {len(destination.already_present)} already present; "
        f"{len(destination.failed)} failed; {lags}"
    )
