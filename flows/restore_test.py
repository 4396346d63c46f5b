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
from redis_dr.metrics.model import Operation, RunMetrics, RunTimer
from redis_dr.metrics.targets import MetricsTargets
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.restore_test.runner import RestoreTestFailed, RestoreTestReport
from redis_dr.storage.location import redact_url
from tasks.metrics import report_metrics
from tasks.restore_test import choose_backup_to_test, restore_and_check
from tasks.run_logs import one_line_errors


@flow(name="redis-restore-test", flow_run_name=run_name_for("restore-test"), validate_parameters=True)
def restore_test(request: RestoreTestRequest, metrics: MetricsTargets | None = None) -> RestoreTestReport:
    """Restore one backup into a throwaway Redis and check it; fail naming what did not match.

    `metrics`: where the result goes (empty: REDIS_DR_PUSHGATEWAY / REDIS_DR_TEXTFILE_DIR).
    """
    one_line_errors()
    log = get_run_logger()
    timer = RunTimer()
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
        report_metrics(metrics, lambda: [result_metrics(request, None, timer)], log)
        return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
    for finding in report.verification.findings:
        log.info("%s: %s: %s", finding.name, finding.result.value, finding.detail)
    if report.data_check is not None:
        log.info("data check: %s", "passed" if report.data_check.passed else "FAILED")
    publish_artifact(request, report, None)
    report_metrics(metrics, lambda: [result_metrics(request, report, timer)], log)
    if not report.passed:
        failure = RestoreTestFailed(report)
        log.error("%s", failure)
        return Failed(message=str(failure), data=failure)  # type: ignore[return-value]
    log.info("%s", report.summary())
    return report


def result_metrics(
    request: RestoreTestRequest, report: RestoreTestReport | None, timer: RunTimer
) -> RunMetrics:
    """The test's result at the location it read (the first one when it did not get that far)."""
    location = report.location if report is not None else redact_url(request.storage[0])
    passed = report is not None and report.passed
    keys = report.keys_restored if report is not None else None
    return timer.metrics(
        Operation.RESTORE_TEST, request.environment, request.instance, location,
        succeeded=passed, key_count=keys,
    )  # fmt: skip
