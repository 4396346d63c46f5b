"""What a validate run leaves for people: a table of every backup checked, and its verdict."""

from prefect.artifacts import create_table_artifact

from flows.backup_report import artifact_key, cell
from redis_dr.units import human_size
from redis_dr.validate import BackupCheck, ValidateRequest, summary


def artifact_rows(checks: list[BackupCheck]) -> list[dict[str, str]]:
    """One row per backup and location: result first (the UI's table is wider than the page), then
    backup id, location, created, size, checks."""
    return [
        {
            "result": "OK" if check.ok else "FAILED: " + "; ".join(check.problems),
            "backup id": cell(check.backup_id),
            "location": cell(check.location),
            "created": cell(f"{check.created:%Y-%m-%d %H:%M:%S} UTC" if check.created else None),
            "size": cell(human_size(check.raw_size) if check.raw_size is not None else None),
            "checks": cell(", ".join(check.checks)),
        }
        for check in checks
    ]


def publish_artifact(request: ValidateRequest, checks: list[BackupCheck]) -> None:
    """Leave the table, described by the run's one-line summary."""
    create_table_artifact(
        key=artifact_key("validate", request.instance),
        table=artifact_rows(checks),
        description=f"Validation of {request.instance}: {summary(checks)}",
    )
