"""What a restore test leaves for people: the verdict, every check, the data check, the timings."""

from prefect.artifacts import create_markdown_artifact

from flows.backup_report import artifact_key
from redis_dr.restore.verify import Result
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.restore_test.runner import RestoreTestReport

_MARK = {Result.PASS: "ok", Result.WARN: "warning", Result.FAIL: "**FAILED**"}


def report_markdown(report: RestoreTestReport) -> str:
    """The artifact's text: verdict first, then what was tested, the checks and the timings."""
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [
        f"# Restore test {verdict}: {report.instance}",
        "",
        report.summary(),
        "",
        f"- backup: `{report.backup_id}` (taken {report.backup_created:%Y-%m-%d %H:%M:%S} UTC) "
        f"from {report.location}",
        f"- restored into: {report.throwaway}, removed afterwards",
        f"- keys restored: {report.keys_restored}"
        + (f"; the live server has {report.source_keys}" if report.source_keys is not None else ""),
        "",
        "| check | result | detail |",
        "|---|---|---|",
    ]
    for finding in report.verification.findings:
        lines.append(f"| {finding.name} | {_MARK[finding.result]} | {_escape(finding.detail)} |")
    check = report.data_check
    if check is not None:
        status = f"exit {check.exit_status}" if check.exit_status is not None else "entry point"
        result = "ok" if check.passed else "**FAILED**"
        said = _escape(check.last_line) or "(said nothing)"
        lines.append(f"| data check `{_escape(check.check)}` | {result} | {status}: {said} |")
    lines += ["", "| phase | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in report.phases.items()]
    return "\n".join(lines) + "\n"


def publish_artifact(
    request: RestoreTestRequest, report: RestoreTestReport | None, error: str | None
) -> None:
    """Leave the report (or the error that stopped the test before it had one)."""
    key = artifact_key("restore-test", request.instance)
    if report is None:
        text = f"# Restore test FAILED: {request.instance}\n\n{error}\n"
        create_markdown_artifact(
            key=key, markdown=text, description=f"Restore test of {request.instance}: {error}"
        )
        return
    create_markdown_artifact(key=key, markdown=report_markdown(report), description=report.summary())


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
