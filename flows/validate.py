"""The validate flow: read backups back and prove them restorable, in every location given.

In each location: the selected backup (the newest by default) and `sample` random
older ones, each read whole and checked (redis_dr/validate.py). The run fails when
any backup fails, with one line naming each failing backup and its first problem;
the artifact is a table of every backup checked. No postponed annotations here
(see flows/backup.py).
"""

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed

from flows.lease import instance_lease
from flows.run_names import run_name_for
from flows.validate_report import publish_artifact
from redis_dr.errors import IntegrityError, RedisDRError
from redis_dr.metrics.model import Operation, RunMetrics, RunTimer
from redis_dr.metrics.targets import MetricsTargets
from redis_dr.storage.location import redact_url
from redis_dr.validate import (
    NO_BACKUP,
    BackupCheck,
    ValidateRequest,
    ValidateResult,
    ValidationFailed,
    check_line,
    summary,
)
from tasks.metrics import report_metrics
from tasks.run_logs import one_line_errors
from tasks.validate import select_to_validate, validate_backup


@flow(name="redis-validate", flow_run_name=run_name_for("validate"), validate_parameters=True)
def validate(request: ValidateRequest, metrics: MetricsTargets | None = None) -> ValidateResult:
    """Validate the selected backup and a random sample of older ones in every location.

    Every location is validated even when an earlier one failed. A backup that
    fails a check, or could not be checked, fails the run (ValidationFailed).
    `metrics`: where the verdict per location goes (empty: REDIS_DR_PUSHGATEWAY /
    REDIS_DR_TEXTFILE_DIR, if set).
    """
    one_line_errors()
    log = get_run_logger()
    timer = RunTimer()
    try:
        with instance_lease(request.environment, request.instance):
            checks, errors = validate_locations(request, log)
    except RedisDRError as exc:  # the instance's lease was not had: nothing was read
        log.error("validation of %s did not start: %s", request.instance, exc)
        report_metrics(metrics, lambda: validate_metrics(request, None, timer), log)
        return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
    except Exception:  # a bug: Prefect keeps the traceback; the verdict is a failure
        report_metrics(metrics, lambda: validate_metrics(request, None, timer), log)
        raise
    publish_artifact(request, checks)
    report_metrics(metrics, lambda: validate_metrics(request, checks, timer), log)
    failed = [check for check in checks if not check.ok]
    if failed:
        # Failed checks beyond those the errors account for are integrity failures.
        exit_code = IntegrityError.exit_code if len(failed) > len(errors) else errors[0].exit_code
        failure = ValidationFailed(summary(checks), checks, exit_code)
        log.error("validation of %s failed: %s", request.instance, failure)
        return Failed(message=str(failure), data=failure)  # type: ignore[return-value]
    log.info("validation of %s: %s", request.instance, summary(checks))
    return ValidateResult(instance=request.instance, checks=checks)


def validate_metrics(
    request: ValidateRequest, checks: list[BackupCheck] | None, timer: RunTimer
) -> list[RunMetrics]:
    """Per location: every backup checked there passed, or not (no checks: the run did not start)."""
    metrics = []
    for url in request.storage:
        location = redact_url(url)
        here = [check for check in checks or [] if check.location == location]
        failed = [check for check in here if not check.ok]
        ran = checks is not None
        metrics.append(timer.metrics(
            Operation.VALIDATE, request.environment, request.instance, location,
            succeeded=ran and bool(here) and not failed,
            checked_backups=len(here) if ran else None, failed_backups=len(failed) if ran else None,
        ))  # fmt: skip
    return metrics


def validate_locations(request: ValidateRequest, log: Any) -> tuple[list[BackupCheck], list[RedisDRError]]:
    """Validate the selection in every location; the checks, and the errors that stopped some."""
    checks: list[BackupCheck] = []
    errors: list[RedisDRError] = []
    for url in request.storage:
        location = redact_url(url)
        try:
            selection = select_to_validate(request, url)
        except RedisDRError as exc:
            log.error("%s: cannot choose the backups to validate: %s", location, exc)
            errors.append(exc)
            checks.append(
                BackupCheck(
                    backup_id=NO_BACKUP,
                    location=location,
                    ok=False,
                    problems=[f"cannot choose the backups to validate: {exc}"],
                )
            )
            continue
        for unreadable in selection.unreadable:
            log.error("%s: %s", location, unreadable.first_problem())
        checks += selection.unreadable
        sampled = len(selection.manifests) - (1 if selection.manifests else 0)
        log.info(
            "%s: validating %s, plus %d of %d older backup(s) at random",
            location, selection.manifests[0].id if selection.manifests else "nothing", sampled,
            selection.older,
        )  # fmt: skip
        for manifest in selection.manifests:
            try:
                check = validate_backup(url, manifest, request.age_identity)
            except RedisDRError as exc:
                errors.append(exc)
                check = BackupCheck(
                    backup_id=manifest.id,
                    location=location,
                    ok=False,
                    problems=[f"{manifest.id}: not validated: {exc}"],
                    created=manifest.created_at,
                    kind=manifest.kind.value,
                    raw_size=manifest.raw_size,
                )
            (log.info if check.ok else log.error)("%s: %s", location, check_line(check))
            checks.append(check)
    return checks, errors
