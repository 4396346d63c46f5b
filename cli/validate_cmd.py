"""`redis-dr validate`: read backups back and prove them restorable (the validate flow)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import ValidationError

from cli.common import add_metrics_arguments, metrics_from_args
from cli.output import enable_progress_bars, say
from cli.prefect_runtime import prefect_api
from redis_dr.config import AGE_IDENTITY_ENV, one_line
from redis_dr.environment import load_environment
from redis_dr.errors import ConfigError
from redis_dr.fetch import identities_from_env
from redis_dr.storage.location import redact_url
from redis_dr.validate import MAX_SAMPLE, BackupCheck, ValidateRequest, ValidationFailed, check_line


def register(sub: Any) -> None:
    """Add the `validate` subcommand."""
    parser = sub.add_parser(
        "validate",
        help="download backups and check them: checksums, decompression, redis-check-rdb, key counts",
        epilog=f"Encrypted backups need {AGE_IDENTITY_ENV} (an age key or its file's path). "
        "Exit 5 when any backup fails.",
    )
    parser.add_argument("--instance", required=True, help="instance name (backups are stored under it)")
    parser.add_argument(
        "--storage", action="append", metavar="URL",
        help="location to validate (repeatable: each one is validated)",
    )  # fmt: skip
    parser.add_argument(
        "--env-file", metavar="YAML",
        help="environment file: its instance's locations (and sample) unless --storage / --sample say",
    )  # fmt: skip
    parser.add_argument(
        "--backup", default="latest", metavar="SELECTOR",
        help="latest (default), a backup id, or a UTC time (the newest at or before it)",
    )  # fmt: skip
    parser.add_argument(
        "--sample", type=int, default=None, metavar="N",
        help=f"also validate N random older backups in each location (0-{MAX_SAMPLE})",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the verdicts as a JSON array")
    add_metrics_arguments(parser)
    parser.set_defaults(run=run)


def request_from_args(args: argparse.Namespace) -> ValidateRequest:
    """The flow's request, validated here (one line for a bad value)."""
    if args.sample is not None and not 0 <= args.sample <= MAX_SAMPLE:
        given = f"--sample {args.sample}"
        raise ConfigError(f"{given}: give 0 to {MAX_SAMPLE} (older backups validated at random)")
    if args.env_file:
        return load_environment(args.env_file).validate_request(
            args.instance, storage=args.storage, backup=args.backup, sample=args.sample
        )
    if not args.storage:
        raise ConfigError("say where the backups are: --storage URL (repeatable) or --env-file FILE")
    try:
        return ValidateRequest(
            instance=args.instance, storage=args.storage, backup=args.backup, sample=args.sample or 0
        )
    except ValidationError as exc:
        raise ConfigError(one_line(exc)) from None


def report(checks: list[BackupCheck], as_json: bool) -> None:
    """The verdicts on stdout: one line per backup, or a JSON array."""
    if as_json:
        print(json.dumps([check.model_dump(mode="json") for check in checks], indent=2))
        return
    several = len({check.location for check in checks}) > 1
    for check in checks:
        print(check_line(check, with_location=several))


def run(args: argparse.Namespace) -> int:
    """Run the validate flow; exit 5 (or what stopped a check) when any backup failed."""
    request = request_from_args(args)
    metrics = metrics_from_args(args)
    identities_from_env()  # a malformed key is refused before anything starts
    sample = f", plus {request.sample} older at random" if request.sample else ""
    where = ", ".join(redact_url(url) for url in request.storage)
    say(f"validating the {request.backup} backup of {request.instance}{sample} in {where}")
    with prefect_api():
        enable_progress_bars()
        from flows.validate import validate

        try:
            result = validate(request, metrics=metrics)
        except ValidationFailed as exc:
            report(exc.checks, args.json)
            raise
    report(result.checks, args.json)
    return 0
