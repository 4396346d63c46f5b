"""`redis-dr restore`: show the plan, ask, then run the restore flow and report its verification."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cli.common import add_metrics_arguments, metrics_from_args, move_password_to_env
from cli.output import enable_progress_bars, say
from cli.prefect_runtime import prefect_api, start_temporary_api_early
from redis_dr.environment import load_environment
from redis_dr.errors import RefusedError
from redis_dr.platforms.target import TARGET_HELP, TargetKind, parse_target
from redis_dr.restore.plan import RestorePlan, new_tag
from redis_dr.restore.preflight import explain_refusal
from redis_dr.restore.request import RestoreRequest, RestoreStrategy, build_restore_request

_EPILOG = (
    "The plan is shown before anything is touched; on a terminal you are asked to confirm "
    "(--yes confirms; without a terminal --yes is required). Passwords: REDIS_PASSWORD, never "
    "on the command line. Encrypted backups: REDIS_DR_AGE_IDENTITY."
)


INTERRUPTED = (
    "redis-dr: interrupted: what the restore had begun was undone first: staged files removed, and "
    "after the stop the previous files put back and the target started (see the lines above)"
)


def register(sub: Any) -> None:
    """Add the `restore` subcommand."""
    parser = sub.add_parser("restore", help="restore a backup into a target, verified", epilog=_EPILOG)
    parser.add_argument("--instance", required=True, help="instance name (its backups are stored under it)")
    parser.add_argument(
        "--storage", action="append", metavar="URL", help="where the backups are (tried in order)"
    )
    parser.add_argument(
        "--env-file", metavar="YAML", help="environment file that names the instance and target"
    )
    parser.add_argument(
        "--backup",
        default="latest",
        help="'latest', a backup id, a UTC time (20251015-140000: the newest at or before it), or a runbook "
        "file (path, s3:// or gs:// object, e.g. redis-backup-20251015-140000.rdb.gz)",
    )
    parser.add_argument("--target", help=TARGET_HELP)
    parser.add_argument("--redis-url", help="how to reach the target's server when the target does not tell")
    parser.add_argument("--strategy", choices=[s.value for s in RestoreStrategy], help="file or replay")
    parser.add_argument("--match", metavar="PATTERN", help="replay: only keys matching, e.g. 'session:*'")
    parser.add_argument("--db", type=int, help="replay: only this database")
    parser.add_argument(
        "--flush", action="store_true", help="replay: delete the target's keys in scope first"
    )
    parser.add_argument(
        "--keep-existing", action="store_true", help="replay: keep keys the target already has"
    )
    parser.add_argument("--no-checkpoint", action="store_true", help="do not back up the target's data first")
    parser.add_argument(
        "--allow-sentinel", action="store_true", help="file strategy although Sentinel watches the target"
    )
    parser.add_argument("--yes", action="store_true", help="approve the plan without asking")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    add_metrics_arguments(parser)
    parser.set_defaults(run=run, interrupted=INTERRUPTED)


def request_from_args(args: argparse.Namespace) -> RestoreRequest:
    """The flow's request from flags, or from the environment file's instance plus flags."""
    target = args.target
    if target and parse_target(target).kind is TargetKind.REDIS:  # refuses a malformed target too
        target = move_password_to_env(target)  # a flow parameter never holds it
    fields: dict[str, object] = {
        "instance": args.instance,
        "backup": args.backup,
        "target": target,
        "redis_url": move_password_to_env(args.redis_url) if args.redis_url else None,
        "strategy": args.strategy,
        "match": args.match,
        "db": args.db,
        "flush": args.flush or None,
        "keep_existing": args.keep_existing or None,
        "checkpoint": False if args.no_checkpoint else None,
        "allow_sentinel": args.allow_sentinel or None,
    }
    if args.storage:
        fields["storage"] = args.storage
    if args.env_file:
        defaults = load_environment(args.env_file).restore_fields(args.instance)
        fields = {**defaults, **{k: v for k, v in fields.items() if v is not None}}
    # REDIS_PASSWORD is read where it is needed, not turned into the request's password: a
    # local or Docker target's own requirepass wins over one left exported for another server.
    fields = {k: v for k, v in fields.items() if v is not None}
    return build_restore_request(**fields)


def preflight_here(request: RestoreRequest, tag: str) -> tuple[RestoreRequest, RestorePlan]:
    """Run preflight in this process, without Prefect, to show the plan before asking."""
    from tasks.restore_access import find_backup, plan_restore

    source = find_backup(request)
    plan, _ = plan_restore(request, source, tag)
    if source.runbook_key is None:
        # Pin what was approved: 'latest' must not become a newer backup between plan and restore.
        request = request.model_copy(update={"backup": source.manifest.id})
    return request, plan


def confirm(plan: RestorePlan, request: RestoreRequest, yes: bool) -> None:
    """Ask on the terminal; --yes approves; no terminal and no --yes refuses."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise RefusedError("no terminal to ask for confirmation: read the plan above and pass --yes")
    where = f" ({request.environment}, protected)" if request.protected else ""
    say(f"restore {plan.backup.id} into {plan.target.description}{where}? type 'yes' to go on: ")
    answer = sys.stdin.readline().strip().lower()
    if answer != "yes":
        raise RefusedError("not confirmed: nothing was touched")


def run(args: argparse.Namespace) -> int:
    """Plan, confirm, restore, report."""
    request = request_from_args(args)
    metrics = metrics_from_args(args)
    tag = new_tag()
    # With --yes nobody is asked: the temporary Prefect API starts now and its ~3 s overlap the
    # plan (it holds a lock on PREFECT_HOME until it answers, so it never waits for a person).
    early = start_temporary_api_early() if args.yes else None
    try:
        request, plan = preflight_here(request, tag)
        for line in plan.lines():
            say(line)
        if plan.refusals:
            raise RefusedError(explain_refusal(plan))
        confirm(plan, request, args.yes)
        with prefect_api(started=early):
            enable_progress_bars()
            from flows.restore import restore

            outcome = restore(request, approved=True, tag=tag, metrics=metrics)
    finally:
        if early is not None:
            early.stop()
    from flows.restore_report import phase_lines, verification_lines

    for line in verification_lines(outcome.verification):
        say(f"  {line}")
    for line in phase_lines(outcome.phases, outcome.recovery_seconds):
        say(f"  {line}")
    if outcome.aside:
        say(f"the previous files are kept in {outcome.aside} (remove them when no longer needed)")
    say(
        f"restored backup {outcome.backup_id} into {outcome.target}: verified, "
        f"{outcome.recovery_seconds:.1f} s from start to verified"
    )
    if args.json:
        print(json.dumps(outcome.model_dump(mode="json"), indent=2))
    return 0
