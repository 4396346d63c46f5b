"""Validation: prove that stored backups can be restored, without restoring them.

What to validate in one location (`select_backups`): the backup the selector names
(the newest by default) and `sample` random older complete ones, as restic's
`check --read-data-subset` reads a random part of its data. Every manifest is
read; one that cannot be read is a failure named in the result, never skipped.

Each backup is then read back whole (redis_dr/validate_backup.py): its objects'
sizes, the stored and the original bytes' sha256, decryption and decompression,
Redis's own checker on the result, and the RDB's key counts against the manifest.
An integrity failure is a result (`BackupCheck` with `ok` False), not an error:
errors are for what stopped the validation itself (no key, an unreachable location).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from redis_dr.catalog import Catalog, parse_selector_time
from redis_dr.config import BackupSelector, EnvironmentName, InstanceName, SecretRef, StorageList
from redis_dr.errors import AccessDeniedError, IntegrityError, NotFoundError, RedisDRError, TransientError
from redis_dr.manifest import BACKUP_ID_PATTERN, Manifest, backup_id_for
from redis_dr.restore.source import PRE_RESTORE_LABEL
from redis_dr.storage import Storage
from redis_dr.storage.location import redact_url

#: The most older backups one run may sample per location.
MAX_SAMPLE = 100
#: The backup id of a verdict on a whole location (it could not be read).
NO_BACKUP = "-"


class ValidateRequest(BaseModel):
    """What the validate flow checks: the backups of one instance, in one or more locations."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    instance: InstanceName = Field(
        description="Name of the instance (lowercase letters, digits, '.', '_', '-') "
        "whose backups are checked."
    )
    environment: EnvironmentName | None = Field(
        default=None, description="Environment the instance belongs to (e.g. production)."
    )
    storage: StorageList = Field(
        min_length=1,
        description="Locations to validate: file:///path, s3://bucket/prefix?region=..., gs://bucket/prefix. "
        "Each one is validated on its own.",
    )
    backup: BackupSelector = Field(
        default="latest",
        description="Which backup: 'latest' (the newest, passing over pre-restore checkpoints), "
        "its id (20251015T140000Z), or a UTC time (the newest at or before it).",
    )
    sample: int = Field(
        default=0,
        ge=0,
        le=MAX_SAMPLE,
        description="How many random older complete backups to validate as well, in each location "
        f"(0-{MAX_SAMPLE}).",
    )
    age_identity: SecretRef | None = Field(
        default=None,
        description="Where the age identity of encrypted backups comes from (env or Prefect Secret "
        "block). Empty: REDIS_DR_AGE_IDENTITY.",
    )


class BackupCheck(BaseModel):
    """The verdict on one backup in one location: what passed, and every problem found."""

    backup_id: str
    location: str  # redacted URL
    ok: bool
    problems: list[str] = Field(default_factory=list)
    checks: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    bytes: int = 0
    created: datetime | None = None
    kind: str | None = None
    raw_size: int | None = None

    def first_problem(self) -> str:
        """The first problem, for one-line summaries."""
        return self.problems[0] if self.problems else "no problem recorded"


class ValidateResult(BaseModel):
    """What a validate run found: one verdict per backup and location."""

    instance: str
    checks: list[BackupCheck]


class Selection(BaseModel):
    """The backups chosen in one location, and the manifests there that could not be read."""

    location: str  # redacted URL
    manifests: list[Manifest]
    unreadable: list[BackupCheck]
    #: Older complete backups the sample was drawn from.
    older: int


class ValidationFailed(IntegrityError):
    """Some backup failed its checks (or could not be checked); `checks` holds every verdict.

    The exit code is IntegrityError's, or that of what stopped a check when no backup
    failed a check itself (e.g. 2 when the age identity is missing).
    """

    def __init__(
        self, message: str, checks: list[BackupCheck], exit_code: int = IntegrityError.exit_code
    ) -> None:
        super().__init__(message)
        self.checks = checks
        self.exit_code = exit_code


def read_manifests(catalog: Catalog) -> tuple[list[Manifest], list[tuple[str, str]]]:
    """Every committed backup, newest first, and (id, reason) for each manifest that cannot be read."""
    manifests: list[Manifest] = []
    unreadable: list[tuple[str, str]] = []
    for backup_id in catalog.backup_ids():
        try:
            manifests.append(catalog.load(backup_id))
        except NotFoundError:
            continue  # no manifest: in progress, or a failed attempt; not a backup
        except (TransientError, AccessDeniedError):
            raise  # the location did not answer: that says nothing about the manifest
        except RedisDRError as exc:
            unreadable.append((backup_id, str(exc)))
    return manifests, unreadable


def choose_backups(
    manifests: list[Manifest],
    selector: str,
    sample: int,
    rng: random.Random,
    *,
    unreadable: frozenset[str] = frozenset(),
    where: str = "",
) -> tuple[list[Manifest], int]:
    """The selected backup (None if its manifest is unreadable: a failure already) and `sample`
    random older ones, newest first; and how many older ones there were to sample from.

    `manifests` are newest first. `latest` and times pass over pre-restore checkpoints, as a
    restore does; an id never does. NotFoundError when the selector names no backup at all.
    """
    selector = selector.strip()
    target: Manifest | None
    if BACKUP_ID_PATTERN.match(selector):
        target = next((m for m in manifests if m.id == selector), None)
        if target is None and selector not in unreadable:
            raise NotFoundError(f"no backup {selector}{where}")
        newest_id = selector
    else:
        now = datetime.now(UTC)
        cutoff = None if selector == "latest" else backup_id_for(parse_selector_time(selector, now))
        eligible = [m for m in manifests if cutoff is None or m.id <= cutoff]
        target = next((m for m in eligible if PRE_RESTORE_LABEL not in m.labels), None)
        if target is None:
            if unreadable:
                return [], 0  # the unreadable manifests are the result
            wanted = "no backups" if cutoff is None else f"no backup at or before {cutoff}"
            raise NotFoundError(f"{wanted}{where}")
        newest_id = target.id
    older = [m for m in manifests if m.id < newest_id]
    picked = rng.sample(older, min(sample, len(older)))
    chosen = ([target] if target is not None else []) + sorted(picked, key=lambda m: m.id, reverse=True)
    return chosen, len(older)


def select_backups(
    storage: Storage, instance: str, selector: str, sample: int, rng: random.Random | None = None
) -> Selection:
    """Read every manifest of `instance` in `storage` and choose what to validate (`choose_backups`).

    `rng`: random.SystemRandom() unless given (tests give a seeded one).
    """
    catalog = Catalog(storage, instance)
    location = redact_url(storage.url)
    manifests, unreadable = read_manifests(catalog)
    chosen, older = choose_backups(
        manifests,
        selector,
        sample,
        rng or random.SystemRandom(),
        unreadable=frozenset(backup_id for backup_id, _ in unreadable),
        where=f" of instance {instance} in {location}",
    )
    failures = [
        BackupCheck(backup_id=backup_id, location=location, ok=False, problems=[f"{backup_id}: {reason}"])
        for backup_id, reason in unreadable
    ]
    return Selection(location=location, manifests=chosen, unreadable=failures, older=older)


def summary(checks: list[BackupCheck]) -> str:
    """One line naming each failing backup and its first problem."""
    failed = [check for check in checks if not check.ok]
    if not failed:
        return f"{len(checks)} backup(s) validated, all OK"
    named = "; ".join(f"{check.location}: {check.first_problem()}" for check in failed)
    return f"{len(failed)} of {len(checks)} backup(s) failed validation: {named}"


def check_line(check: BackupCheck, *, with_location: bool = False) -> str:
    """'OK 20261125T010000Z (sha256, decompress, redis-check-rdb, 1,234 keys in 2 dbs)' or
    'FAILED 20261125T010000Z: stored object ... (truncated)' (+ how many more problems);
    `with_location` adds ' [location]'."""
    where = f" [{check.location}]" if with_location else ""
    if check.ok:
        return f"OK {check.backup_id} ({', '.join(check.checks)}){where}"
    more = len(check.problems) - 1
    return f"FAILED {check.first_problem()}" + (f" (and {more} more)" if more > 0 else "") + where
