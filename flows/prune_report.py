"""What a prune run tells people: per location, each backup kept or removed and why (a markdown
artifact), and the same rows for the terminal and `redis-dr prune --json`.

A row is a JSON object: `kind` (backup | orphan | in-progress | upload),
`backup_id` (the id, or the id an upload was under; null if none), `key` (an
upload's key, else null), `created_at` (a backup's time; for the others their
last write; ISO 8601 UTC), `action` (keep | remove: what the plan decided),
`removed` (true only once an applied run removed it) and `reasons`.
"""

from datetime import datetime
from typing import Any

from prefect.artifacts import create_markdown_artifact

from flows.backup_report import artifact_key
from redis_dr.durations import format_duration
from redis_dr.prune import LocationOutcome, PruneOutcome, PrunePlan, PruneResult


def when(moment: datetime | None) -> str:
    """'2026-11-25 14:00:00' (UTC), or '-' when not known."""
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def report_rows(plan: PrunePlan, result: PruneResult | None) -> list[dict[str, Any]]:
    """Every backup (newest first), then orphans, ids in progress and unfinished uploads."""
    grace = format_duration(plan.orphan_grace)
    removed = set(result.removed + result.orphans_removed + result.uploads_aborted) if result else set()

    def row(kind: str, backup_id: str | None, moment: datetime | None, keep: bool, reasons: list[str],
            key: str | None = None) -> dict[str, Any]:  # fmt: skip
        return {
            "kind": kind,
            "backup_id": backup_id,
            "key": key,
            "created_at": None if moment is None else moment.isoformat(),
            "action": "keep" if keep else "remove",
            "removed": not keep and (key or backup_id) in removed,
            "reasons": reasons,
        }

    return [
        *(row("backup", d.backup_id, d.created_at, d.keep, d.reasons) for d in plan.decisions),
        *(
            row("orphan", o.backup_id, o.last_written, False,
                [f"no manifest; last written {when(o.last_written)}, more than {grace} ago"])
            for o in plan.orphans
        ),
        *(
            row("in-progress", o.backup_id, o.last_written, True,
                [f"no manifest; written to at {when(o.last_written)}, within {grace}: in progress"])
            for o in plan.in_progress
        ),
        *(
            row("upload", _id_of(u.key), u.started, False,
                [f"unfinished write; last written {when(u.started)}, more than {grace} ago"], key=u.key)
            for u in plan.stale_uploads
        ),
    ]  # fmt: skip


def _id_of(key: str) -> str | None:
    parts = key.split("/")
    return parts[1] if len(parts) > 2 else None


def action_text(row: dict[str, Any], applied: bool) -> str:
    """keep / remove (a dry run) / removed / not removed (applied, but the plan no longer held)."""
    if row["action"] == "keep" or not applied:
        return str(row["action"])
    return "removed" if row["removed"] else "not removed"


def item_text(row: dict[str, Any]) -> str:
    """'20261125T010000Z', 'orphan 20261125T010000Z', 'upload sessions/…/.dump.rdb.x.partial'."""
    if row["kind"] == "backup":
        return str(row["backup_id"])
    return f"{row['kind']} {row['key'] or row['backup_id']}"


CLI_HINT = "pass --apply to remove them"


def summary_line(plan: PrunePlan, result: PruneResult | None, hint: str = CLI_HINT) -> str:
    """'dry run: 2 of 10 would be removed ...; <hint>' or 'removed 2 of 10 backups ...'."""
    extras = []
    if plan.orphans:
        extras.append(f"{len(plan.orphans)} orphan(s)")
    if plan.stale_uploads:
        extras.append(f"{len(plan.stale_uploads)} unfinished upload(s)")
    waiting = f"; {len(plan.in_progress)} in progress left alone" if plan.in_progress else ""
    total = len(plan.decisions)
    if result is None:
        also = f" (and {', '.join(extras)})" if extras else ""
        would = f"dry run: {len(plan.removals)} of {total} would be removed{also}{waiting}"
        return f"{would}; {hint}"
    done = [f"removed {len(result.removed)} of {total} backups"]
    if result.orphans_removed:
        done.append(f"{len(result.orphans_removed)} orphan(s)")
    if result.uploads_aborted:
        done.append(f"{len(result.uploads_aborted)} unfinished upload(s)")
    skipped = f"; {len(result.skipped)} left: the plan no longer held" if result.skipped else ""
    return f"{', '.join(done)} ({result.objects_deleted} objects deleted){skipped}{waiting}"


def location_markdown(position: int, location: LocationOutcome) -> str:
    """One location's section: its outcome line, then one table row per backup, orphan and upload."""
    lines = [f"## Location {position}: `{location.url}`", "", f"Policy: {location.policy}.", ""]
    if location.error is not None:
        lines += [f"**FAILED**: {location.error}", ""]
    plan, result = location.plan, location.result
    if plan is None:
        return "\n".join(lines)
    lines += [f"**{summary_line(plan, result, hint='run again with apply on to remove them')}**", ""]
    lines += ["| backup | created (UTC) | action | reasons |", "|---|---|---|---|"]
    rows = report_rows(plan, result)
    lines += [
        f"| {item_text(r)} | {when(parse_time(r['created_at']))} | {action_text(r, result is not None)} | "
        f"{', '.join(r['reasons'])} |"
        for r in rows
    ]
    if not rows:
        lines.append("| - | - | - | no backup here |")
    if result is not None and result.skipped:
        lines += ["", "Left because the plan no longer held:", *(f"- {line}" for line in result.skipped)]
    return "\n".join(lines)


def parse_time(text: str | None) -> datetime | None:
    """A row's `created_at` back as a datetime."""
    return None if text is None else datetime.fromisoformat(text)


def outcome_markdown(outcome: PruneOutcome, error: str | None = None) -> str:
    """The whole artifact: what kind of run, then each location."""
    kind = "applied" if outcome.applied else "dry run, nothing removed"
    head = f"# Prune of {outcome.instance} ({kind})\n\n"
    if error is not None:
        head += f"**FAILED**: {error}\n\n"
    sections = [location_markdown(n, location) for n, location in enumerate(outcome.locations, start=1)]
    return head + "\n\n".join(sections) + "\n"


def publish_artifact(outcome: PruneOutcome, error: str | None = None) -> None:
    """Leave the run's tables: per location, every backup kept or removed and why."""
    failed = error is not None or any(location.error is not None for location in outcome.locations)
    description = f"Prune of {outcome.instance}" + ("" if outcome.applied else " (dry run)")
    create_markdown_artifact(
        key=artifact_key("prune", outcome.instance),
        markdown=outcome_markdown(outcome, error),
        description=description + (": FAILED" if failed else ""),
    )
