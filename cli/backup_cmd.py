"""`redis-dr backup`: run the backup flow for one instance and print the backup id."""

from __future__ import annotations

import argparse
import os
from typing import Any
from urllib.parse import urlsplit

from cli.common import add_metrics_arguments, metrics_from_args, move_password_to_env
from cli.output import enable_progress_bars, say
from cli.prefect_runtime import prefect_api
from redis_dr.backup import describe_files
from redis_dr.config import PASSWORD_ENV, BackupRequest, SnapshotMode, build_request
from redis_dr.environment import load_environment
from redis_dr.errors import ConfigError
from redis_dr.manifest import BackupKind
from redis_dr.pipeline import Compression
from redis_dr.platforms.target import TARGET_HELP
from redis_dr.units import human_size


def register(sub: Any) -> None:
    """Add the `backup` subcommand."""
    parser = sub.add_parser(
        "backup",
        help="take a backup now and print its id",
        epilog="The Redis password comes from the URL or REDIS_PASSWORD; it is never printed.",
    )
    parser.add_argument("--instance", required=True, help="instance name (backups are stored under it)")
    parser.add_argument(
        "--redis-url", help="redis://[user@]host:port/db, rediss:// for TLS (default: what --target tells)"
    )
    parser.add_argument(
        "--target",
        metavar="TARGET",
        help="where the server and its files are: local:///path/redis.conf, docker://CONTAINER, "
        "compose://PROJECT/SERVICE (for --kind aof, and --mode bgsave off this host)",
    )
    parser.add_argument(
        "--kind", choices=[BackupKind.RDB.value, BackupKind.AOF.value], help="rdb (default) or aof (--target)"
    )
    parser.add_argument("--storage", action="append", metavar="URL", help="where to store (first = primary)")
    parser.add_argument("--env-file", metavar="YAML", help="environment file that describes the instance")
    parser.add_argument("--mode", choices=[m.value for m in SnapshotMode], help="stream (default) or bgsave")
    parser.add_argument(
        "--compression", choices=[c.value for c in Compression], help="zstd (default), gzip or none"
    )
    parser.add_argument(
        "--encrypt-to", action="append", metavar="RECIPIENT", help="age recipient (repeatable)"
    )
    parser.add_argument("--dump-path", help="bgsave mode: path of the server's dump.rdb")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="label to record")
    add_metrics_arguments(parser)
    parser.set_defaults(run=run)


def request_from_args(args: argparse.Namespace) -> BackupRequest:
    """Build the flow's request from flags, or from the environment file plus flags."""
    labels = dict(_split_label(text) for text in args.label)
    overrides: dict[str, object] = {
        "redis_url": move_password_to_env(args.redis_url) if args.redis_url else None,
        "storage": args.storage,
        "target": args.target,
        "kind": args.kind,
        "mode": args.mode,
        "compression": args.compression,
        "encrypt_to": args.encrypt_to,
        "dump_path": args.dump_path,
        "labels": labels or None,
    }
    if args.env_file:
        request = load_environment(args.env_file).backup_request(args.instance, **overrides)
    elif not (args.redis_url or args.target) or not args.storage:
        raise ConfigError(
            "say what to back up: --redis-url URL (or --target TARGET) --storage URL, or --env-file FILE"
        )
    else:
        if args.target and "://" not in args.target:
            raise ConfigError(f"--target {args.target!r} is not understood: use {TARGET_HELP}")
        given = {k: v for k, v in overrides.items() if v is not None}
        request = build_request(instance=args.instance, **given)
    refuse_user_without_password(request)
    return request


def refuse_user_without_password(request: BackupRequest) -> None:
    """A password reference to an unset variable; or `redis://NAME@host` and no password anywhere.

    NAME may well be a password (redis-cli's spelling).

    redis-cli -u takes a lone `NAME@` as the password; Redis URLs elsewhere take it as
    an ACL user name. Refused here, never shown, before it is printed or stored.
    """
    if request.password is not None and request.password.env is not None:
        if request.password.env not in os.environ:  # checked here, before a Prefect API starts
            raise ConfigError(f"the environment variable {request.password.env} is not set")
        return
    if request.password is not None or os.environ.get(PASSWORD_ENV):
        return
    if request.redis_url is not None and urlsplit(request.redis_url).username:
        raise ConfigError(
            "the Redis URL names a user (NAME@host) but no password is set: for an ACL user put "
            f"its password in {PASSWORD_ENV}; if NAME is itself the password (redis-cli's "
            f"redis://PASSWORD@host), put it in {PASSWORD_ENV} and drop it from the URL"
        )


def _split_label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"label {text!r} is not KEY=VALUE")
    return key, value


def run(args: argparse.Namespace) -> int:
    """Run the backup flow in this process and report the committed backup."""
    request = request_from_args(args)
    metrics = metrics_from_args(args)
    primary, *copies = request.storage
    say(
        f"backing up {request.instance} from {request.source()} ({request.how()}, "
        f"{request.compression.value}) to {primary}"
        + (f", then a verified copy to {', '.join(copies)}" if copies else "")
    )
    with prefect_api():
        enable_progress_bars()
        from flows.backup import backup

        manifest = backup(request, metrics=metrics)
    say(
        f"committed backup {manifest.id}: {manifest.source.total_keys:,} keys, "
        f"{human_size(manifest.raw_size)} {describe_files(manifest)} -> "
        f"{human_size(manifest.stored_size)} stored "
        f"in {manifest.duration_seconds:.1f} s, in {primary}"
    )
    for location in copies:
        say(f"copied backup {manifest.id} to {location}: size and sha256 verified")
    print(manifest.id)
    return 0
