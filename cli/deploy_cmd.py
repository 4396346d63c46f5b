"""`redis-dr deploy`: register an environment file's deployments with the Prefect server."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.output import print_table, say
from cli.prefect_runtime import check_api_answers, quiet_prefect_console
from redis_dr.automation_plan import AutomationSpec, automation_notes, automation_specs
from redis_dr.deployment_plan import DeploymentSpec, deployment_specs, left_out
from redis_dr.environment import load_environment
from redis_dr.errors import ConfigError, TransientError


def register(sub: Any) -> None:
    """Add the `deploy` subcommand."""
    parser = sub.add_parser(
        "deploy",
        help="register an environment's deployments (schedules, forms, leases) and automations (failed runs, "
        "overdue backups) with the Prefect server",
        epilog="The server is PREFECT_API_URL (e.g. http://127.0.0.1:4200/api). Then run a worker: "
        "prefect worker start --pool <work pool>",
    )
    parser.add_argument("--env-file", required=True, metavar="YAML", help="the environment file")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be registered; talk to no server"
    )
    parser.add_argument("--json", action="store_true", help="print the deployments and automations as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Register (or show) the deployments and automations the environment file stands for."""
    environment = load_environment(args.env_file)
    specs = deployment_specs(environment)
    automations = automation_specs(environment)
    for note in [*left_out(environment), *automation_notes(environment)]:
        say(f"note: {note}")
    if args.dry_run:
        if args.json:
            print(json.dumps(_as_json(specs, automations), indent=2))
        else:
            _show(specs, automations)
        return 0
    quiet_prefect_console()
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    if not api_url:
        raise ConfigError(
            "deploy registers with a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api), "
            "or pass --dry-run to see what would be registered"
        )
    try:
        check_api_answers(api_url)
    except TransientError as exc:  # its hint (run without a server) does not apply to deploy
        unanswered = str(exc).split(": start it", 1)[0]
        raise TransientError(
            f"{unanswered}: deploy registers with a running Prefect server: start it "
            "(prefect server start), or pass --dry-run to see what would be registered"
        ) from None
    from flows.deploy import register as register_deployments

    registered = register_deployments(environment)
    if args.json:
        print(json.dumps({**registered.model_dump(), **_as_json(specs, automations)}, indent=2))
        return 0
    _show(specs, automations)
    created = " (created)" if registered.work_pool_created else ""
    say(f"work pool {registered.work_pool}{created}; one lease per instance: {', '.join(registered.leases)}")
    for name in registered.removed:
        say(f"removed {name}: the environment file no longer names it")
    for name, outcome in registered.automations.items():
        say(f"automation {name}: {outcome}")
    for name in registered.automations_removed:
        say(f"removed automation {name}: the environment file no longer stands for it")
    say(f"registered {len(registered.deployments)} deployment(s) of {environment.environment} at {api_url}; "
        f"runs start when a worker polls: prefect worker start --pool {registered.work_pool}")  # fmt: skip
    return 0


def _as_json(specs: list[DeploymentSpec], automations: list[AutomationSpec]) -> dict[str, Any]:
    return {
        "specs": [spec.model_dump() for spec in specs],
        "automation_specs": [{**a.model_dump(mode="json"), "trigger": a.trigger} for a in automations],
    }


def _show(specs: list[DeploymentSpec], automations: list[AutomationSpec]) -> None:
    print_table(
        ["DEPLOYMENT", "SCHEDULE", "WORK POOL"],
        [
            [
                spec.full_name,
                "; ".join(f"{s.cron} ({s.timezone})" for s in spec.schedules) or "on demand",
                spec.work_pool,
            ]
            for spec in specs
        ],
    )
    if automations:
        print()
        print_table(
            ["AUTOMATION", "FIRES WHEN", "NOTIFIES"],
            [[a.name, a.trigger, a.notify or "no one (an event only)"] for a in automations],
        )
