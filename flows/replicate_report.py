"""What a replication run tells people: a markdown artifact with one row per destination."""

from prefect.artifacts import create_markdown_artifact

from flows.backup_report import artifact_key
from redis_dr.replicate import DestinationResult, ReplicateRequest, ReplicateResult, in_words
from redis_dr.storage.location import redact_url
from redis_dr.units import human_size

HEADERS = ("destination", "policy", "lacked", "copied", "bytes", "already present", "failed",
           "lag before", "lag after")  # fmt: skip


def _cell(value: object) -> str:
    """A table cell: never empty, no '|' or newline to break the row."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text or "-"


def _lag(seconds: int | None) -> str:
    return "unknown" if seconds is None else in_words(seconds)


def destination_row(destination: DestinationResult) -> list[str]:
    """One row of the table."""
    skipped = destination.missing - destination.planned
    lacked = f"{destination.missing}" + (f" ({skipped} not kept by its policy)" if skipped else "")
    cells: list[object] = [
        destination.url,
        destination.policy or "keeps all",
        lacked,
        len(destination.copied),
        human_size(destination.bytes),
        len(destination.already_present),
        len(destination.failed),
        _lag(destination.lag_before_seconds),
        _lag(destination.lag_after_seconds),
    ]
    return [_cell(cell) for cell in cells]


def markdown(request: ReplicateRequest, result: ReplicateResult | None, error: str | None = None) -> str:
    """The artifact: the outcome first, a table per destination, then every problem in full."""
    failed = error is not None or (result is not None and result.problems)
    lines = [
        f"# Replication of {request.instance}: {'FAILED' if failed else 'done'}",
        "",
        f"- source: {redact_url(request.source)}"
        + (f" ({result.source_backups} complete backup(s))" if result is not None else ""),
        f"- lag limit: {in_words(request.max_lag) if request.max_lag is not None else 'none'}",
    ]
    if request.environment:
        lines.append(f"- environment: {request.environment}")
    if error is not None:
        lines += ["", f"**Error:** {error}"]
    if result is not None:
        lines += ["", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(destination_row(d)) + " |" for d in result.destinations]
        unreadable = [(d.url, problem) for d in result.destinations for problem in d.unreadable]
        if unreadable:
            lines += ["", "## Unreadable at a destination", ""]
            lines += [f"- {_cell(url)}: {_cell(problem)}" for url, problem in unreadable]
        if result.problems:
            lines += ["", "## What failed", ""] + [f"- {_cell(problem)}" for problem in result.problems]
        copied = [(d.url, backup_id) for d in result.destinations for backup_id in d.copied]
        if copied:
            lines += ["", "## Copied", ""] + [f"- {backup_id} to {url}" for url, backup_id in copied]
    return "\n".join(lines) + "\n"


def publish_artifact(
    request: ReplicateRequest, result: ReplicateResult | None, error: str | None = None
) -> None:
    """Leave the run's markdown artifact (key `replicate-<instance>`)."""
    problems = error or (result.problems[0] if result is not None and result.problems else None)
    description = f"Replication of {request.instance}" + (f": FAILED: {problems}" if problems else "")
    create_markdown_artifact(
        key=artifact_key("replicate", request.instance),
        markdown=markdown(request, result, error),
        description=description[:500],
    )
