"""What a backup run tells people: its log lines and its table artifact, for success and failure."""

import re
from dataclasses import dataclass, field

from prefect.artifacts import create_table_artifact

from redis_dr.backup import describe_files
from redis_dr.config import BackupRequest
from redis_dr.copy import CopyOutcome
from redis_dr.manifest import BackupKind, Manifest
from redis_dr.redis.info import ServerFacts
from redis_dr.storage.location import redact_url
from redis_dr.units import human_size

#: What the table shows for a value that is not known (an empty string would render as a bullet).
UNKNOWN = "—"  # an em dash: the UI renders cells as markdown, where "-" alone is a list bullet


@dataclass
class LocationResult:
    """What happened at one storage location."""

    url: str  # redacted
    primary: bool
    outcome: str = "not attempted"
    failed: bool = False


@dataclass
class BackupRun:
    """How far a backup run got: its step, and what it learned and did on the way."""

    request: BackupRequest
    step: str = "start"
    backup_id: str | None = None
    facts: ServerFacts | None = None
    manifest: Manifest | None = None
    locations: list[LocationResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.locations = [
            LocationResult(url=redact_url(url), primary=position == 0)
            for position, url in enumerate(self.request.storage)
        ]

    @property
    def failed_copies(self) -> list[LocationResult]:
        """Locations after the primary whose copy failed."""
        return [location for location in self.locations if location.failed and not location.primary]


def data_path_line(manifest: Manifest) -> str:
    """'5.2 s: waited 5.0 s for the server, then 0.2 s transfer at 115 MB/s'.

    The server's own wait (its fork, and `repl-diskless-sync-delay` for a
    replication stream) is not transfer: a rate over the whole duration would
    make a small store look slow.
    """
    total = manifest.duration_seconds
    wait = manifest.wait_seconds
    if wait is None:
        rate = manifest.raw_size / total / 1e6 if total > 0 else None
        return f"{total:.1f} s" + (f" at {rate:.0f} MB/s" if rate is not None else "")
    transfer = max(total - wait, 0.0)
    speed = f" at {manifest.raw_size / transfer / 1e6:.0f} MB/s" if transfer >= 0.001 else ""
    return f"{total:.1f} s: waited {wait:.1f} s for the server, then {transfer:.1f} s transfer{speed}"


def server_line(facts: ServerFacts) -> str:
    """'Redis 7.0.15 (master), 1,234 keys in 1 db(s), 2.1 MiB used'."""
    keys = sum(stats.key_count for stats in facts.keyspace.values())
    return (
        f"Redis {facts.redis_version} ({facts.role}), {keys:,} keys in {len(facts.keyspace)} db(s), "
        f"{human_size(facts.used_memory)} used"
    )


def snapshot_line(manifest: Manifest) -> str:
    """'2,000 keys, 1.2 MiB RDB -> 310.5 KiB stored (zstd); data path ...'."""
    stored = manifest.files[0]
    keys = "keys (INFO at the cut)" if manifest.kind is BackupKind.AOF else "keys"
    return (
        f"{manifest.source.total_keys:,} {keys}, "
        f"{human_size(manifest.raw_size)} {describe_files(manifest)} -> "
        f"{human_size(manifest.stored_size)} stored ({stored.compression.value}); "
        f"data path {data_path_line(manifest)}"
    )


def copy_line(outcome: CopyOutcome) -> str:
    """'copied 310.5 KiB in 0.2 s (server-side)' or 'already present'."""
    if outcome.status == "already-present":
        return "already present (verified manifest)"
    how = "server-side" if outcome.server_side else "streamed"
    return f"copied {human_size(outcome.bytes)} in {outcome.seconds:.1f} s ({how}), verified"


def object_rows(manifest: Manifest) -> list[tuple[str, object]]:
    """One 'object' row per stored file (an AOF has several), with its raw sha256."""
    rows: list[tuple[str, object]] = []
    for stored in manifest.files:
        aof = stored.original_name
        what = f" (AOF file {aof}, {stored.raw_size:,} B raw)" if aof else ""
        rows.append(("object", f"{manifest.instance}/{manifest.id}/{stored.name}{what}"))
        rows.append(("sha256 (raw)", stored.raw_sha256))
    return rows


def cell(value: object) -> str:
    """A table value: never empty (an empty string renders as a bullet in the UI)."""
    text = "" if value is None else str(value)
    return text if text.strip() else UNKNOWN


def artifact_key(prefix: str, instance: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{instance}".lower()).strip("-")


def artifact_rows(run: BackupRun, error: str | None = None) -> list[tuple[str, str]]:
    """The rows of the run's table: the outcome first, then what is known of the backup."""
    request, manifest = run.request, run.manifest
    status = "committed" if error is None else f"FAILED at {run.step}"
    rows: list[tuple[str, object]] = [
        ("status", status),
        ("error", error),
        ("backup id", run.backup_id),
        ("instance", request.instance),
        ("environment", request.environment),
        ("redis", request.source()),
        ("mode", request.how()),
    ]
    for position, location in enumerate(run.locations, start=1):
        role = "primary" if location.primary else f"copy {position}"
        rows.append((f"location {position} ({role})", f"{location.url}: {location.outcome}"))
    if manifest is not None:
        stored = manifest.files[0]
        source = manifest.source
        rows += [
            ("server", f"{source.redis_version} ({source.role}), RDB v{cell(source.rdb_version)}"),
            ("keys", f"{source.total_keys:,} in {len(source.keyspace)} db(s)"),
            ("size", f"{manifest.raw_size:,} B raw, {manifest.stored_size:,} B stored"),
            ("compression", stored.compression.value),
            *object_rows(manifest),
            ("encrypted to", ", ".join(stored.encrypted_to) or "not encrypted"),
            ("data path", data_path_line(manifest)),
        ]
    elif run.facts is not None:
        rows.append(("server", server_line(run.facts)))
    rows.append(("labels", ", ".join(f"{k}={v}" for k, v in sorted(request.labels.items()))))
    return [(name, cell(value)) for name, value in rows]


def publish_artifact(run: BackupRun, error: str | None = None) -> None:
    """Leave a table a person can read: what was backed up, where, how big, how fast; or what failed."""
    what = f"Backup {run.backup_id}" if run.backup_id else "Backup"
    description = f"{what} of {run.request.instance}" + (f": FAILED at {run.step}" if error else "")
    create_table_artifact(
        key=artifact_key("backup", run.request.instance),
        table=[{"field": name, "value": value} for name, value in artifact_rows(run, error)],
        description=description,
    )
