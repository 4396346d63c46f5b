"""`redis-dr restore-test`: restore a backup into a throwaway Redis and check it (the restore test flow)."""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from pydantic import ValidationError

from cli.common import OnlyOnce, add_metrics_arguments, flag_line, metrics_from_args, move_password_to_env
from cli.output import enable_progress_bars, say
from cli.prefect_runtime import prefect_api
from redis_dr.config import AGE_IDENTITY_ENV
from redis_dr.environment import load_environment
from redis_dr.errors import ConfigError
from redis_dr.fetch import identities_from_env
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.restore_test.runner import RestoreTestFailed, RestoreTestReport
from redis_dr.storage.location import redact_url

#: Request field -> the flag it comes from, for one-line errors.
FLAGS = {
    "instance": "--instance",
    "storage": "--storage",
    "backup": "--backup",
    "check": "--check",
    "check_entry_point": "--check-entry-point",
    "check_env": "--check-env",
    "image": "--image",
    "sample": "--sample",
    "source_url": "--source-url",
    "dbsize_tolerance": "--tolerance",
}


def register(sub: Any) -> None:
    """Add the `restore-test` subcommand."""
    parser = sub.add_parser(
        "restore-test",
        help="restore a backup into a throwaway Redis and check it against its manifest",
        description="Restore a backup into a throwaway redis-server (removed afterwards, whatever "
        "happens) and check it: key counts and expiries per database against the manifest, sampled "
        "keys' types, expiries and values, the live server's key count, and your own data check.",
        epilog=f"Encrypted backups need {AGE_IDENTITY_ENV}. The live server's password: REDIS_PASSWORD. "
        "Exit 0 when every check passed, 5 when one failed (the line names it).",
    )
    parser.add_argument("--instance", required=True, help="instance name (backups are stored under it)")
    parser.add_argument(
        "--storage", action="append", metavar="URL", help="where the backups are (repeatable: tried in order)"
    )
    parser.add_argument(
        "--env-file",
        metavar="YAML",
        help="environment file: the instance's locations and restore_test settings",
    )
    parser.add_argument(
        "--backup", action=OnlyOnce, metavar="SELECTOR",
        help="latest (default), a backup id, a UTC time, or an age such as 7d-ago",
    )  # fmt: skip
    parser.add_argument(
        "--check", action=OnlyOnce, metavar="COMMAND",
        help="data check run against the throwaway server (no shell; REDIS_URL / {url} name it, "
        "REDIS_SOCKET / {socket} its unix socket); exit 0 passes",
    )  # fmt: skip
    parser.add_argument(
        "--check-entry-point", action=OnlyOnce, metavar="MODULE:FUNCTION",
        help="data check in Python, called with the throwaway server's URL",
    )  # fmt: skip
    parser.add_argument(
        "--check-env", action="append", metavar="NAME",
        help="environment variable passed on to the check command (repeatable; it gets no others "
        "but PATH, HOME, locale and time zone)",
    )  # fmt: skip
    parser.add_argument(
        "--source-url", action=OnlyOnce, metavar="URL", help="the live server, to compare key counts"
    )
    parser.add_argument(
        "--tolerance", action=OnlyOnce, type=float, metavar="FRACTION",
        help="how far the restored key count may be from the live server's (default 0.05 = 5%%)",
    )  # fmt: skip
    parser.add_argument("--sample", action=OnlyOnce, type=int, metavar="N", help="keys sampled (default 200)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_metrics_arguments(parser)
    parser.set_defaults(run=run)


def request_from_args(args: argparse.Namespace) -> RestoreTestRequest:
    """The flow's request, validated here (one line naming the flag for a bad value)."""
    fields: dict[str, object] = {
        "backup": args.backup,
        "check": shlex.split(args.check) if args.check is not None else None,
        "check_entry_point": args.check_entry_point,
        "check_env": args.check_env,
        "source_url": move_password_to_env(args.source_url) if args.source_url else None,
        "dbsize_tolerance": args.tolerance,
        "sample": args.sample,
    }
    if args.check is not None and not fields["check"]:
        raise ConfigError(
            "--check: give the command to run, e.g. --check '/opt/app/bin/check-sessions {url}'"
        )
    given = {name: value for name, value in fields.items() if value is not None}
    try:
        if args.env_file:
            return load_environment(args.env_file).restore_test_request(
                args.instance, storage=args.storage, **given
            )
        if not args.storage:
            raise ConfigError("say where the backups are: --storage URL or --env-file FILE")
        return RestoreTestRequest(instance=args.instance, storage=args.storage, **given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(flag_line(exc, FLAGS)) from None


def print_report(report: RestoreTestReport, as_json: bool) -> None:
    """The report on stdout: one line per check, or JSON."""
    if as_json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    for finding in report.verification.findings:
        print(f"{finding.result.value:4}  {finding.name}: {finding.detail}")
    check = report.data_check
    if check is not None:
        status = f"exit {check.exit_status}" if check.exit_status is not None else "entry point"
        result = "pass" if check.passed else "fail"
        print(f"{result:4}  data check ({status}): {check.last_line or '(said nothing)'}")
    print(report.summary())


def run(args: argparse.Namespace) -> int:
    """Run the restore test flow; exit 5 when a check failed."""
    request = request_from_args(args)
    metrics = metrics_from_args(args)
    identities_from_env()  # a malformed key is refused before anything starts
    where = ", ".join(redact_url(url) for url in request.storage)
    say(f"restore test of the {request.backup} backup of {request.instance} from {where} (throwaway Redis)")
    with prefect_api():
        enable_progress_bars()
        from flows.restore_test import restore_test

        try:
            report = restore_test(request, metrics=metrics)
        except RestoreTestFailed as exc:
            print_report(exc.report, args.json)
            raise
    print_report(report, args.json)
    return 0
