"""`redis-dr drill`: show the plan, have the person type the instance's name, then kill the target,
restore its latest backup, verify, and report RTO, RPO and the trend (the drill flow)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError

from cli.common import OnlyOnce, flag_line
from cli.output import enable_progress_bars, say
from cli.prefect_runtime import prefect_api, start_temporary_api_early
from redis_dr.drill.measure import DrillFailedError, phase_rows
from redis_dr.drill.plan import DrillPlan, make_plan, restore_request
from redis_dr.drill.report import DrillOutcome
from redis_dr.drill.request import DrillRequest
from redis_dr.environment import load_environment
from redis_dr.errors import ConfigError, RefusedError
from redis_dr.restore.plan import new_tag
from redis_dr.restore.request import RestoreStrategy

_EPILOG = (
    "The plan is shown before anything is killed; on a terminal you confirm it by typing the instance's "
    "name (--yes confirms; without a terminal --yes is required). With --env-file the environment must "
    "allow drills ('drills: true') and must not be protected. Exit status: 0 the drill passed; 7 the "
    "target was restored and verified but slower than the RTO target; 5 the restored data is not the "
    "backup's (the marker key survived, or a replay's verification failed); 6 refused before the kill "
    "(preflight, not confirmed): nothing was touched; 2 bad input, or an environment that does not "
    "allow drills or is protected; any other (1, 70, 75, ...) the restore failed after the kill: the "
    "error line says whether the target may be down and how to restore it by hand with 'redis-dr "
    "restore'. Passwords: REDIS_PASSWORD. Encrypted backups: REDIS_DR_AGE_IDENTITY."
)
INTERRUPTED = (
    "redis-dr: interrupted: a restore interrupted after the kill puts the previous files back; the "
    "target may be down: check it, and restore it with 'redis-dr restore' if it is"
)
#: Request field -> the flag it comes from, for one-line validation errors.
FLAG_OF = {
    "instance": "--instance",
    "storage": "--storage",
    "target": "--target",
    "strategy": "--strategy",
    "rto_target": "--rto-target",
}


def register(sub: Any) -> None:
    """Add the `drill` subcommand."""
    parser = sub.add_parser(
        "drill", help="RTO drill: kill the target, restore the latest backup, time it", epilog=_EPILOG
    )
    parser.add_argument("--instance", required=True, help="instance name (its backups are stored under it)")
    parser.add_argument("--target", action=OnlyOnce, help="local:///path/redis.conf, docker://NAME or "
                        "compose://PROJECT/SERVICE: the server that is killed and restored")  # fmt: skip
    parser.add_argument(
        "--storage", action="append", metavar="URL",
        help="where the backups are (repeatable; the drill's history is kept in the first)",
    )  # fmt: skip
    parser.add_argument("--env-file", metavar="YAML", help="environment file naming the instance and target")
    strategies = [strategy.value for strategy in RestoreStrategy]
    parser.add_argument("--strategy", choices=strategies, help="file (default) or replay")
    parser.add_argument("--rto-target", metavar="DURATION", help="the recovery time objective (default 5m)")
    parser.add_argument("--yes", action="store_true", help="kill without asking")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    parser.set_defaults(run=run, interrupted=INTERRUPTED)


def request_from_args(args: argparse.Namespace) -> DrillRequest:
    """The flow's request from flags, or from the environment file (which must allow drills)."""
    overrides: dict[str, object] = {
        "target": args.target,
        "storage": args.storage,
        "strategy": args.strategy,
        "rto_target": args.rto_target,
    }
    if args.env_file:
        return load_environment(args.env_file).drill_request(args.instance, **overrides)
    if not args.target or not args.storage:
        raise ConfigError("say what to drill: --target TARGET and --storage URL, or --env-file FILE")
    fields = {"instance": args.instance, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return DrillRequest.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError(flag_line(exc, FLAG_OF)) from None


def plan_here(request: DrillRequest) -> DrillPlan:
    """The drill's plan, made in this process (no Prefect) to show before asking."""
    from datetime import UTC, datetime

    from tasks.restore_access import find_backup, plan_restore

    restore = restore_request(request)
    source = find_backup(restore)
    restore = restore_request(request, backup=source.manifest.id)
    restore_plan, _ = plan_restore(restore, source, new_tag())
    return make_plan(request, restore_plan, datetime.now(UTC))


def confirm(plan: DrillPlan, yes: bool) -> None:
    """The person types the instance's name; --yes confirms; no terminal and no --yes refuses."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise RefusedError("no terminal to ask for confirmation: read the plan above and pass --yes")
    say(f"this KILLS {plan.target}. Type the instance name ({plan.instance}) to kill it: ")
    if sys.stdin.readline().strip() != plan.instance:
        raise RefusedError("not confirmed: nothing was killed")


def report(outcome: DrillOutcome, as_json: bool) -> None:
    """Phases and the verdict on stderr; the outcome as JSON on stdout with --json."""
    for name, seconds in phase_rows(outcome.phases):
        say(f"  {name:<10} {seconds:8.2f} s")
    if outcome.trend is not None:
        say(f"  trend: {outcome.trend.line(outcome.rto_seconds)}")
    for line in outcome.unreadable:
        say(f"  drill history: {line}")
    if outcome.record_key:
        say(f"  figures kept in {outcome.record_key}")
    say(outcome.verdict())
    if as_json:
        print(json.dumps(outcome.model_dump(mode="json"), indent=2))


def run(args: argparse.Namespace) -> int:
    """Plan, confirm, drill, report; the exit status says pass or why not (see the epilog)."""
    request = request_from_args(args)
    early = start_temporary_api_early() if args.yes else None
    try:
        plan = plan_here(request)
        for line in plan.lines():
            say(line)
        if plan.refusals:
            first = plan.refusals[0]
            raise RefusedError(f"drill refused before the kill: {first.name}: {first.detail}")
        confirm(plan, args.yes)
        with prefect_api(started=early):
            enable_progress_bars()
            from flows.drill import drill

            try:
                outcome = drill(request)
            except DrillFailedError as exc:
                if isinstance(exc.outcome, DrillOutcome):
                    report(exc.outcome, args.json)
                raise
    finally:
        if early is not None:
            early.stop()
    report(outcome, args.json)
    return 0
