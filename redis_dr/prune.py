"""Pruning one instance's backups at one storage location: a plan (the dry run), then applying it.

`plan_prune` reads the catalog and decides (redis_dr.retention), changing
nothing. If any manifest cannot be read, or a backup is dated in the future (a
wrong clock: keep-within, counted from the newest backup, would expire all the
others), it refuses: nothing is removed until a person looks. It also finds
what no manifest accounts for, once older than the grace period: orphans
(objects under a backup id without a manifest, such as a crashed backup or a
prune interrupted after a manifest went) and unfinished writes (a file
backend's hidden temp files, S3 multipart uploads). An id written to within
the grace period is a backup in progress: never touched, reported.

`apply_prune` removes what the plan lists and nothing else, re-checking each
item first: a backup loses its manifest first (it stops being listed at once),
then its data, then its reservation; an orphan that got a manifest or was
written to since the plan is left alone. Run again after a failure, it finishes
what is left (a backup whose manifest is already gone still loses its data).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from redis_dr.catalog import RESERVATION_NAME, Catalog
from redis_dr.config import EnvironmentName, InstanceName, StorageList, StorageUrl
from redis_dr.durations import Duration, format_duration
from redis_dr.errors import ConfigError, IntegrityError, NotFoundError
from redis_dr.manifest import BACKUP_ID_PATTERN, as_utc
from redis_dr.retention import Decision, RetentionPolicy, decide
from redis_dr.storage.base import ObjectInfo, StaleUpload, Storage

#: A backup (or a copy) streams for at most 6 hours: anything written more recently may be live.
MIN_ORPHAN_GRACE = timedelta(hours=7)
DEFAULT_ORPHAN_GRACE = timedelta(hours=24)
#: A backup dated later than now by more than this came from a wrong clock: nothing is pruned.
CLOCK_SKEW = timedelta(hours=1)
#: Far enough ahead that `stale_uploads` lists every unfinished write, live ones included.
_EVERY_UPLOAD = timedelta(days=3650)


class LocationRetention(BaseModel):
    """One storage location and the policy its backups are pruned with."""

    model_config = ConfigDict(extra="forbid")

    url: StorageUrl = Field(
        description="The storage location: file:///path, s3://bucket/prefix?region=..., gs://bucket/prefix."
    )
    policy: RetentionPolicy = Field(description="What to keep at this location (each location has its own).")


class PruneRequest(BaseModel):
    """What the prune flow takes: an instance, its locations with their policies, dry run or apply."""

    model_config = ConfigDict(extra="forbid")

    instance: InstanceName = Field(description="The instance whose backups are pruned (its name in storage).")
    environment: EnvironmentName | None = Field(
        default=None, description="The environment the instance belongs to (e.g. production), if any."
    )
    locations: list[LocationRetention] = Field(
        min_length=1, description="Each storage location to prune, with its own retention policy."
    )
    apply: bool = Field(
        default=False,
        description="Remove what the policies do not keep. Off: a dry run that lists it and removes nothing.",
    )
    orphan_grace: Duration = Field(
        default=DEFAULT_ORPHAN_GRACE,
        description="Data without a manifest and unfinished uploads are removed once nothing was written "
        "to them for this long (at least 7h: a backup streams for up to 6h), e.g. 24h.",
    )

    @field_validator("orphan_grace")
    @classmethod
    def _long_enough(cls, value: timedelta) -> timedelta:
        if value < MIN_ORPHAN_GRACE:
            raise ValueError(
                f"orphan_grace {format_duration(value)} is too short: a backup in progress may write "
                f"nothing for up to 6h; give at least {format_duration(MIN_ORPHAN_GRACE)}"
            )
        return value

    @field_validator("locations")
    @classmethod
    def _distinct(cls, value: list[LocationRetention]) -> list[LocationRetention]:
        TypeAdapter(StorageList).validate_python([location.url for location in value])
        return value


class Orphan(BaseModel):
    """A backup id with objects but no manifest."""

    backup_id: str = Field(description="The id the objects are stored under.")
    #: Not named `keys`: Prefect walks task results with dict(model), which would call it.
    object_keys: list[str] = Field(description="Its objects' keys, when the plan was made.")
    last_written: datetime | None = Field(
        description="The newest of its objects' times and its reservation's (None: not known)."
    )


class PrunePlan(BaseModel):
    """What a prune of one location removes (and keeps, and why): the dry run's answer."""

    location: str = Field(description="The storage location (no secrets in it).")
    instance: str
    policy: RetentionPolicy
    planned_at: datetime = Field(description="The time the decisions were made at (UTC).")
    orphan_grace: Duration
    decisions: list[Decision] = Field(description="Every complete backup, newest first: keep or remove.")
    orphans: list[Orphan] = Field(description="Data without a manifest, older than the grace: removed.")
    in_progress: list[Orphan] = Field(description="Data without a manifest written to recently: left alone.")
    stale_uploads: list[StaleUpload] = Field(description="Unfinished writes older than the grace: removed.")

    @property
    def removals(self) -> list[Decision]:
        """The backups this plan removes, newest first."""
        return [decision for decision in self.decisions if not decision.keep]

    def summary(self) -> str:
        """'2 of 10 backups removed, 1 orphan, 1 unfinished upload; 1 in progress left alone'."""
        text = f"{len(self.removals)} of {len(self.decisions)} backups removed"
        if self.orphans:
            text += f", {len(self.orphans)} orphan(s)"
        if self.stale_uploads:
            text += f", {len(self.stale_uploads)} unfinished upload(s)"
        if self.in_progress:
            text += f"; {len(self.in_progress)} in progress left alone"
        return text


class PruneResult(BaseModel):
    """What applying a plan removed, and what it left because the plan no longer held."""

    location: str
    removed: list[str] = Field(default_factory=list, description="Backup ids removed.")
    orphans_removed: list[str] = Field(default_factory=list, description="Orphan ids removed.")
    uploads_aborted: list[str] = Field(default_factory=list, description="Keys of unfinished writes removed.")
    skipped: list[str] = Field(default_factory=list, description="One line per item left, and why.")
    objects_deleted: int = Field(default=0, description="Objects deleted, manifests included.")


class LocationOutcome(BaseModel):
    """One location of a prune run: its plan, what applying it did, or the error that stopped it."""

    url: str = Field(description="The storage location (no secrets in it).")
    policy: str = Field(description="The policy, described ('last 3, daily 7; min 1').")
    plan: PrunePlan | None = None
    result: PruneResult | None = Field(default=None, description="None in a dry run.")
    error: str | None = Field(default=None, description="Why this location was not pruned.")


class PruneOutcome(BaseModel):
    """What the prune flow returns: each location's outcome."""

    instance: str
    applied: bool = Field(description="False: a dry run, nothing was removed.")
    locations: list[LocationOutcome]


def plan_prune(
    storage: Storage,
    instance: str,
    policy: RetentionPolicy,
    now: datetime,
    *,
    orphan_grace: timedelta = DEFAULT_ORPHAN_GRACE,
) -> PrunePlan:
    """Decide what a prune of `instance` at `storage` removes at `now`; change nothing.

    IntegrityError, and no plan, if any manifest cannot be read.
    """
    catalog = Catalog(storage, instance)
    listing = catalog.list()
    if listing.unreadable:
        more = f" (and {len(listing.unreadable) - 1} more)" if len(listing.unreadable) > 1 else ""
        raise IntegrityError(
            f"nothing is removed from {storage.url}: {listing.unreadable[0]}{more}; fix or remove it by hand"
        )
    future = [m for m in listing.manifests if as_utc(m.created_at) > as_utc(now) + CLOCK_SKEW]
    if future:  # keep-within counts from the newest backup: a future one would expire all the others
        raise IntegrityError(
            f"nothing is removed from {storage.url}: backup {future[0].id} is dated "
            f"{as_utc(future[0].created_at):%Y-%m-%d %H:%M} UTC, after now (a clock was wrong); "
            "remove it by hand, then prune again"
        )
    cutoff = now - orphan_grace
    uploads = storage.stale_uploads(f"{instance}/", now + _EVERY_UPLOAD)
    live_ids = {_backup_id_of(upload.key) for upload in uploads if upload.started >= cutoff}
    committed = {manifest.id for manifest in listing.manifests}
    orphans: list[Orphan] = []
    in_progress: list[Orphan] = []
    for backup_id in catalog.backup_ids():
        if backup_id in committed:
            continue
        objects = list(storage.list(catalog.backup_prefix(backup_id)))
        if not objects or any(info.key == catalog.manifest_key(backup_id) for info in objects):
            continue  # gone, or committed since the listing: not an orphan
        orphan = Orphan(
            backup_id=backup_id,
            object_keys=[info.key for info in objects],
            last_written=_last_written(catalog, backup_id, objects),
        )
        recent = orphan.last_written is None or orphan.last_written >= cutoff
        (in_progress if recent or backup_id in live_ids else orphans).append(orphan)
    return PrunePlan(
        location=storage.url,
        instance=catalog.instance,
        policy=policy,
        planned_at=now,
        orphan_grace=orphan_grace,
        decisions=decide(listing.manifests, policy, now),
        orphans=orphans,
        in_progress=in_progress,
        stale_uploads=[upload for upload in uploads if upload.started < cutoff],
    )


def apply_prune(catalog: Catalog, plan: PrunePlan) -> PruneResult:
    """Remove what `plan` lists, re-checking each item: backups, then orphans, then unfinished writes."""
    if plan.location != catalog.storage.url or plan.instance != catalog.instance:
        raise ConfigError(
            f"this plan is for {plan.instance} in {plan.location}, not {catalog.instance} in "
            f"{catalog.storage.url}: plan again"
        )
    result = PruneResult(location=plan.location)
    for decision in plan.removals:
        _remove_backup(catalog, decision.backup_id, result)
    for orphan in plan.orphans:
        _remove_orphan(catalog, orphan, result)
    for upload in plan.stale_uploads:
        if catalog.storage.abort_upload(upload):
            result.uploads_aborted.append(upload.key)
        else:
            result.skipped.append(f"unfinished upload {upload.key}: gone, or written to since the plan")
    return result


def _remove_backup(catalog: Catalog, backup_id: str, result: PruneResult) -> None:
    """Manifest first (the backup stops being listed), then its data, then its reservation."""
    storage = catalog.storage
    try:
        catalog.load(backup_id)
    except NotFoundError:
        pass  # an earlier attempt removed the manifest: finish removing its data
    except IntegrityError as exc:
        result.skipped.append(f"backup {backup_id}: its manifest cannot be read now ({exc})")
        return
    storage.delete(catalog.manifest_key(backup_id))
    result.objects_deleted += 1
    result.objects_deleted += _delete_data(catalog, backup_id)
    result.removed.append(backup_id)


def _remove_orphan(catalog: Catalog, orphan: Orphan, result: PruneResult) -> None:
    """Remove an orphan's objects unless it got a manifest or was written to since the plan."""
    backup_id = orphan.backup_id
    objects = list(catalog.storage.list(catalog.backup_prefix(backup_id)))
    if any(info.key == catalog.manifest_key(backup_id) for info in objects):
        result.skipped.append(f"orphan {backup_id}: committed since the plan (it has a manifest now)")
        return
    if objects:
        last_written = _last_written(catalog, backup_id, objects)
        if last_written is None or orphan.last_written is None or last_written > orphan.last_written:
            result.skipped.append(f"orphan {backup_id}: written to since the plan (a backup in progress?)")
            return
    result.objects_deleted += _delete_data(catalog, backup_id)
    result.orphans_removed.append(backup_id)


def _delete_data(catalog: Catalog, backup_id: str) -> int:
    """Delete every object under the id, the reservation last (the id stays claimed until then)."""
    reservation = catalog.reservation_key(backup_id)
    keys = [info.key for info in catalog.storage.list(catalog.backup_prefix(backup_id))]
    data = [key for key in keys if key != reservation]
    for key in data:
        catalog.storage.delete(key)
    if reservation in keys:
        catalog.storage.delete(reservation)
    return len(keys)


def _last_written(catalog: Catalog, backup_id: str, objects: list[ObjectInfo]) -> datetime | None:
    """The newest of the objects' times and the reservation's own (None if any time is unknown)."""
    times = [info.modified for info in objects]
    if any(moment is None for moment in times):
        return None
    known = [moment for moment in times if moment is not None]
    if any(info.key.endswith("/" + RESERVATION_NAME) for info in objects):
        try:
            holder = catalog.holder(backup_id)
        except IntegrityError:
            holder = None  # unreadable: its object's time still counts
        if holder is not None:
            known.append(holder.reserved_at)
    return max(known) if known else None


def _backup_id_of(key: str) -> str | None:
    """'sessions/20261125T010000Z/.dump.rdb.x.partial' -> '20261125T010000Z'."""
    parts = key.split("/")
    return parts[1] if len(parts) > 2 and BACKUP_ID_PATTERN.match(parts[1]) else None

