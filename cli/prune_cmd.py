"""`redis-dr prune`: apply a retention policy to one instance at one location (a dry run unless --apply).

Human output: one line per backup (and per orphan or unfinished upload) with its
action and reasons on stdout, then a summary line on stderr. `--json` prints a
list of objects on stdout, one per backup then per orphan, id in progress and
unfinished upload: `kind`, `backup_id`, `key`, `created_at`, `action`
(keep | remove), `removed` (true once --apply removed it), `reasons` (see
flows/prune_report.py).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import ValidationError

from cli.common import OnlyOnce, add_metrics_arguments, flag_line, metrics_from_args
from cli.output import print_table, say
from cli.prefect_runtime import prefect_api
from redis_dr.environment import load_environment
from redis_dr.errors import ConfigError
from redis_dr.prune import LocationRetention, PruneRequest
from redis_dr.retention import RetentionPolicy
from redis_dr.storage.location import redact_url

#: Flag -> policy field; the rules (min_keep and timezone are not rules).
RULE_FLAGS = {
    "--keep-last": "keep_last",
    "--keep-hourly": "keep_hourly",
    "--keep-daily": "keep_daily",
    "--keep-weekly": "keep_weekly",
    "--keep-monthly": "keep_monthly",
    "--keep-yearly": "keep_yearly",
    "--keep-within": "keep_within",
}
FLAG_OF = {field: flag for flag, field in RULE_FLAGS.items()}
FLAG_OF |= {"min_keep": "--min-keep", "timezone": "--timezone"}


def register(sub: Any) -> None:
    """Add the `prune` subcommand."""
    parser = sub.add_parser(
        "prune",
        help="remove the backups a retention policy does not keep (a dry run unless --apply)",
        epilog="Never removed: the newest backup, pinned backups (label 'pinned'), pre-restore "
        "checkpoints younger than 7d, and the newest --min-keep. Periods are counted in UTC "
        "unless --timezone. --json prints a list of objects: kind, backup_id, key, created_at, "
        "action (keep|remove), removed, reasons.",
    )
    parser.add_argument("--storage", metavar="URL", action=OnlyOnce, help="the location to prune")
    parser.add_argument(
        "--env-file", metavar="YAML",
        help="environment file: prune every location of the instance with its own policy (or only --storage)",
    )  # fmt: skip
    parser.add_argument("--instance", required=True, help="instance name (backups are stored under it)")
    for flag, what in [
        ("--keep-last", "the N newest backups"),
        ("--keep-hourly", "the newest backup of each of the last N hours that have one"),
        ("--keep-daily", "the newest backup of each of the last N days that have one"),
        ("--keep-weekly", "the newest backup of each of the last N ISO weeks that have one"),
        ("--keep-monthly", "the newest backup of each of the last N months that have one"),
        ("--keep-yearly", "the newest backup of each of the last N years that have one"),
    ]:
        parser.add_argument(flag, type=int, metavar="N", help=f"keep {what}")
    parser.add_argument(
        "--keep-within", metavar="DURATION", help="keep every backup taken within DURATION before the "
        "newest one, e.g. 30d, 12h, 1d12h (m = minutes)",
    )  # fmt: skip
    parser.add_argument("--min-keep", type=int, metavar="N", help="keep at least the N newest (default 1)")
    parser.add_argument("--timezone", metavar="ZONE", help="count periods in this IANA zone (default UTC)")
    parser.add_argument("--apply", action="store_true", help="remove them (default: only list them)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects on stdout")
    add_metrics_arguments(parser)
    parser.set_defaults(run=run)


def policy_from_args(args: argparse.Namespace) -> RetentionPolicy:
    """The policy the flags give; refused in one line without any --keep-* rule."""
    fields: dict[str, object] = {
        field: getattr(args, field) for field in RULE_FLAGS.values() if getattr(args, field) is not None
    }
    if not fields:
        raise ConfigError(
            "a prune without a rule would keep everything: pass at least one of "
            + ", ".join(RULE_FLAGS)
            + " (e.g. --keep-daily 7)"
        )
    for field in ("min_keep", "timezone"):
        if getattr(args, field) is not None:
            fields[field] = getattr(args, field)
    try:
        return RetentionPolicy.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError(flag_line(exc, FLAG_OF)) from None


def request_from_args(args: argparse.Namespace) -> PruneRequest:
    """The flow's request: one location with the policy of the flags, or the environment file's."""
    if args.env_file:
        given = [flag for flag, field in RULE_FLAGS.items() if getattr(args, field) is not None]
        if given:
            raise ConfigError(
                f"{given[0]} with --env-file: the environment file says each location's policy "
                "(give the rules with --storage instead)"
            )
        return load_environment(args.env_file).prune_request(
            args.instance, apply=args.apply, storage=args.storage
        )
    if not args.storage:
        raise ConfigError("say what to prune: --storage URL with --keep-* rules, or --env-file FILE")
    policy = policy_from_args(args)
    try:
        return PruneRequest(
            instance=args.instance,
            locations=[LocationRetention(url=args.storage, policy=policy)],
            apply=args.apply,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(f"{error['msg'].removeprefix('Value error, ')}") from None


def run(args: argparse.Namespace) -> int:
    """Run the prune flow in this process and print each backup's action and reasons."""
    request = request_from_args(args)
    metrics = metrics_from_args(args)
    dry = "" if request.apply else " (dry run)"
    for location in request.locations:
        where = redact_url(location.url)
        say(f"pruning {request.instance} in {where}{dry}: keeping {location.policy.describe()}")
    with prefect_api():
        from flows.prune import prune

        outcome = prune(request, metrics=metrics)
    from flows.prune_report import action_text, item_text, parse_time, report_rows, summary_line, when

    rows: list[dict[str, Any]] = []
    for result in outcome.locations:
        if result.plan is None:  # a failed location fails the run: the flow raised already
            raise AssertionError("the prune flow returned a location without a plan")
        located = [{**row, "location": result.url} for row in report_rows(result.plan, result.result)]
        rows += located
        if len(outcome.locations) > 1:
            say(f"{result.url} (keeping {result.policy}):")
        if args.json:
            pass  # printed once, after every location
        elif located:
            print_table(
                ["BACKUP", "CREATED (UTC)", "ACTION", "REASONS"],
                [
                    [item_text(row), when(parse_time(row["created_at"])), action_text(row, outcome.applied),
                     ", ".join(row["reasons"])]
                    for row in located
                ],
            )  # fmt: skip
        else:
            say(f"no backups of {request.instance} in {result.url}")
        for line in result.result.skipped if result.result else []:
            say(f"left: {line}")
        say(summary_line(result.plan, result.result))
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0
