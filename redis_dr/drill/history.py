"""Drill history: every drill's figures, kept beside the backups, read back for the trend.

Layout: `<instance>/drills/<UTC id>.json` in the first storage location, one JSON
record per drill, written create-only and never overwritten. The catalog and
prune only look at backup-id directories (`<instance>/<YYYYMMDDTHHMMSSZ>/`), so
`drills/` is left alone by listing, restore, retention and orphan cleanup.

A later drill reads the last records back: a record that cannot be read, or one dated
after now (a drill host whose clock was ahead: it would head the table and the median
for ever), is named and left out, never skipped silently. A drill whose RTO is much
slower than the median of the previous ones (`REGRESSION_FACTOR` x the median of at
least `MIN_PREVIOUS`) is flagged as a regression even when it passes.
"""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime

from pydantic import BaseModel, Field, ValidationError

from redis_dr import __version__
from redis_dr.errors import AlreadyExistsError, NotFoundError, RedisDRError
from redis_dr.manifest import backup_id_for, backup_id_time, next_backup_id, validate_instance_name
from redis_dr.storage.base import Storage

HISTORY_DIR = "drills"
RECORD_VERSION = 1
#: How many records a drill reads back (and the artifact's table shows, with the new one).
HISTORY_LIMIT = 10
#: A drill slower than this many times the median of the previous ones is flagged.
REGRESSION_FACTOR = 1.5
#: The median needs at least this many previous drills with a measured RTO.
MIN_PREVIOUS = 3
#: How many later seconds a record's id may move to when its own is taken.
_ID_ATTEMPTS = 60
_RECORD_NAME = re.compile(r"^(\d{8}T\d{6}Z)\.json$")


class DrillRecord(BaseModel):
    """The figures of one drill, as kept in storage."""

    format_version: int = RECORD_VERSION
    id: str = Field(description="UTC id of the drill (its kill time, YYYYMMDDTHHMMSSZ).")
    instance: str
    environment: str | None = None
    target: str
    strategy: str
    backup_id: str
    backup_created_at: datetime
    killed_at: datetime
    rto_seconds: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="Kill to verified; None if not recovered."
    )
    rto_target_seconds: float = Field(gt=0, allow_inf_nan=False)
    phases: dict[str, float] = Field(default_factory=dict)
    rpo_seconds: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="The restored backup's age at the kill."
    )
    keys_before: dict[int, int] = Field(default_factory=dict)
    keys_after: dict[int, int] = Field(default_factory=dict)
    keys_lost: int | None = None
    marker_gone: bool | None = None
    passed: bool
    failure: str | None = None
    regression: bool = False
    median_before: float | None = Field(default=None, description="Median RTO of the previous drills.")
    tool_version: str = __version__

    def to_json(self) -> bytes:
        """The stored form."""
        return self.model_dump_json(indent=2).encode()


class History(BaseModel):
    """Records read back, newest first, and those that could not be read (named)."""

    records: list[DrillRecord] = Field(default_factory=list)
    unreadable: list[str] = Field(default_factory=list)


class Trend(BaseModel):
    """How one drill's RTO compares with the previous ones."""

    previous: int = Field(description="Previous drills with a measured RTO that the median is taken of.")
    median_before: float | None = None
    ratio: float | None = None
    regression: bool = False

    def line(self, rto_seconds: float | None) -> str:
        """One sentence for the report."""
        if rto_seconds is None:
            return "no RTO measured: the target did not recover"
        if self.median_before is None:
            return (
                f"no trend yet: {self.previous} previous drill(s) with an RTO, {MIN_PREVIOUS} are needed "
                "for a median"
            )
        slower = f"REGRESSION: more than {REGRESSION_FACTOR}x the median"
        verdict = slower if self.regression else "within the trend"
        return (
            f"RTO {rto_seconds:.1f} s against a median of {self.median_before:.1f} s over the previous "
            f"{self.previous} drill(s): {self.ratio:.2f}x, {verdict}"
        )


def history_prefix(instance: str) -> str:
    """Where an instance's drill records are: `<instance>/drills/`."""
    return f"{validate_instance_name(instance)}/{HISTORY_DIR}/"


def record_key(instance: str, drill_id: str) -> str:
    """The key of one drill's record."""
    return f"{history_prefix(instance)}{drill_id}.json"


def trend(rto_seconds: float | None, previous: list[DrillRecord]) -> Trend:
    """Compare an RTO with the median of the previous drills' (newest first, at most HISTORY_LIMIT)."""
    rtos = [record.rto_seconds for record in previous if record.rto_seconds is not None]
    rtos = rtos[:HISTORY_LIMIT]
    if len(rtos) < MIN_PREVIOUS:
        return Trend(previous=len(rtos))
    median = statistics.median(rtos)
    if rto_seconds is None or median <= 0:
        return Trend(previous=len(rtos), median_before=median)
    ratio = rto_seconds / median
    return Trend(previous=len(rtos), median_before=median, ratio=ratio, regression=ratio > REGRESSION_FACTOR)


def read_history(
    storage: Storage, instance: str, limit: int = HISTORY_LIMIT, now: datetime | None = None
) -> History:
    """The last `limit` records up to `now`, newest first; anything that is not a readable record,
    or is dated later than `now`, is named."""
    prefix = history_prefix(instance)
    history = History()
    names: list[str] = []
    latest = backup_id_for(now or datetime.now(UTC))
    for info in storage.list(prefix):
        name = info.key[len(prefix) :]
        if not _RECORD_NAME.match(name):
            history.unreadable.append(f"{info.key}: not a drill record (expected <UTC id>.json)")
        elif name.removesuffix(".json") > latest:
            history.unreadable.append(
                f"{info.key}: dated in the future (now is {latest}): left out of the trend; the clock of "
                "the host that ran it was ahead: remove it"
            )
        else:
            names.append(name)
    for name in sorted(names, reverse=True)[:limit]:
        key = prefix + name
        try:
            record = DrillRecord.model_validate_json(storage.get_bytes(key))
        except NotFoundError:
            continue  # removed since the listing: nothing to name
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "the file"
            history.unreadable.append(f"{key}: unreadable ({where}: {problem['msg']})")
            continue
        if record.instance != instance:
            history.unreadable.append(f"{key}: a record of instance {record.instance!r}")
            continue
        history.records.append(record)
    return history


def write_record(storage: Storage, record: DrillRecord) -> DrillRecord:
    """Store the record create-only under its id, or the next free second; never overwrite.

    The same bytes already there are success (a write repeated after its answer was lost).
    Returns the record as stored (its id may have moved on).
    """
    backup_id_time(record.id)  # a malformed id is refused before anything is written
    for _ in range(_ID_ATTEMPTS):
        key = record_key(record.instance, record.id)
        data = record.to_json()
        try:
            storage.put_bytes(key, data)
            return record
        except AlreadyExistsError:
            try:
                if storage.get_bytes(key) == data:
                    return record
            except NotFoundError:
                pass
        record = record.model_copy(update={"id": next_backup_id(record.id)})
    raise RedisDRError(
        f"no free drill record id in {storage.url}/{history_prefix(record.instance)} after "
        f"{_ID_ATTEMPTS} tries: remove stray records there"
    )
