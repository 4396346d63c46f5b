"""The restore test flow: prove a backup restores, in a throwaway Redis, without touching the instance.

Choose the backup (latest, an id, a time, or an age such as 7d-ago), restore it
into a throwaway redis-server, check it against its manifest, the live server
and the data check, and leave the report. The run fails, naming the mismatch,
when any check fails. No postponed annotations here (see flows/backup.py).
"""

from prefect import flow, get_run_logger
from prefect.states import Failed

from flows.lease import instance_lease
from flows.restore_test_report import publish_artifact
from flows.run_names import run_name_for
from redis_dr.errors import RedisDRError
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.restore_test.runner import RestoreTestFailed, RestoreTestReport
from redis_dr.storage.location import redact_url
from tasks.restore_test import choose_backup_to_test, restore_and_check
from tasks.run_logs import one_line_errors


@flow(name="redis-restore-test", flow_run_name=run_name_for("restore-test"), validate_parameters=True)
def restore_test(request: RestoreTestRequest) -> RestoreTestReport:
    """Restore one backup into a throwaway Redis and check it; fail naming what did not match."""
    one_line_errors()
    log = get_run_logger()
    report: RestoreTestReport | None = None
    try:
        with instance_lease(request.environment, request.instance):
            source = choose_backup_to_test(request)
            log.info(
                "testing backup %s of %s from %s (taken %s) in a throwaway Redis",
                source.manifest.id, request.instance, redact_url(source.location),
                f"{source.manifest.created_at:%Y-%m-%d %H:%M:%S} UTC",
            )  # fmt: skip
            report = restore_and_check(request, source)
    except RedisDRError as exc:
        log.error("restore test of %s failed: %s", request.instance, exc)
        publish_artifact(request, None, str(exc))
        return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
    for finding in report.verification.findings:
        log.info("%s: %s: %s", finding.name, finding.result.value, finding.detail)
    if report.data_check is not None:
        log.info("data check: %s", "passed" if report.data_check.passed else "FAILED")
    publish_artifact(request, report, None)
    if not report.passed:
        failure = RestoreTestFailed(report)
        log.error("%s", failure)
        return Failed(message=str(failure), data=failure)  # type: ignore[return-value]
    log.info("%s", report.summary())
    return report
