"""`redis-dr replicate`: copy every backup the destinations lack, verified; one line per destination."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from cli.common import OnlyOnce, add_metrics_arguments, flag_line, metrics_from_args
from cli.output import say
from cli.prefect_runtime import prefect_api
from redis_dr.environment import load_environment
from redis_dr.errors import ConfigError
from redis_dr.replicate import MAX_PARALLEL, ReplicateRequest, destination_line


def register(sub: Any) -> None:
    """Add the `replicate` subcommand."""
    parser = sub.add_parser(
        "replicate",
        help="copy the backups other locations lack (verified, resumable)",
        epilog="Each destination receives every complete backup of the source it lacks; a copy "
        "interrupted by a failure is finished by the next run.",
    )
    parser.add_argument("--instance", required=True, help="instance name (backups are stored under it)")
    parser.add_argument("--storage", metavar="URL", action=OnlyOnce, help="the source location")
    parser.add_argument(
        "--to", action="append", metavar="URL", dest="destinations",
        help="a destination location (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--env-file", metavar="YAML",
        help="environment file: from the instance's primary to its other locations, with their retention",
    )  # fmt: skip
    parser.add_argument(
        "--max-lag", metavar="DURATION",
        help="fail when a destination's newest backup is still this much older than the source's (e.g. 2h)",
    )  # fmt: skip
    parser.add_argument(
        "--parallel", type=int, metavar="N", help=f"copies at once (1-{MAX_PARALLEL}, default 4)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    add_metrics_arguments(parser)
    parser.set_defaults(run=run)


def request_from_args(args: argparse.Namespace) -> ReplicateRequest:
    """The flow's request from the flags, or the environment file's; a bad flag is one line naming it."""
    if args.env_file:
        if args.storage or args.destinations:
            raise ConfigError("--env-file names the locations: give --storage and --to without it")
        request = load_environment(args.env_file).replicate_request(args.instance)
        changes = {"max_lag": args.max_lag, "parallel": args.parallel}
        merged = {**request.model_dump(), **{k: v for k, v in changes.items() if v is not None}}
        try:
            return ReplicateRequest.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(flag_line(exc, FLAGS)) from None
    if not args.storage or not args.destinations:
        raise ConfigError("say what to copy where: --storage SRC --to DST [--to DST...], or --env-file FILE")
    fields: dict[str, object] = {
        "instance": args.instance,
        "source": args.storage,
        "destinations": args.destinations,
        "max_lag": args.max_lag,
        "parallel": args.parallel,
    }
    try:
        return ReplicateRequest.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(flag_line(exc, FLAGS)) from None


#: The flag each field of the request comes from.
FLAGS = {"source": "--storage", "destinations": "--to", "max_lag": "--max-lag", "parallel": "--parallel"}


def run(args: argparse.Namespace) -> int:
    """Run the replicate flow in this process; one line per destination, or the result as JSON."""
    request = request_from_args(args)
    metrics = metrics_from_args(args)
    say(f"replicating {request.instance} from {request.source} to {len(request.destinations)} location(s)")
    with prefect_api():
        from flows.replicate import replicate

        result = replicate(request, metrics=metrics)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        for destination in result.destinations:
            print(destination_line(destination))
    return 0
