"""`redis-dr fetch`: write a backup's original RDB to a file, every byte verified."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import add_location_arguments, resolve_anywhere
from cli.output import enable_progress_bars, say
from cli.prefect_runtime import quiet_prefect_console
from redis_dr.config import SecretRef
from redis_dr.fetch import fetch_to_file, identities_from_env, output_path, refuse_existing
from redis_dr.pipeline import parse_identities
from redis_dr.units import human_size


def register(sub: Any) -> None:
    """Add the `fetch` subcommand."""
    parser = sub.add_parser(
        "fetch",
        help="write a backup's RDB to a file (decompressed, decrypted, verified)",
        epilog="Encrypted backups: set REDIS_DR_AGE_IDENTITY to the age key or its file's path.",
    )
    add_location_arguments(parser)
    parser.add_argument(
        "--backup",
        default="latest",
        help="'latest', a backup id (20251015T140000Z) or a UTC time (20251015-140000): "
        "the newest backup at or before it",
    )
    parser.add_argument(
        "--output", required=True, type=output_path, help="file to write (must not exist; its directory must)"
    )
    parser.add_argument(
        "--age-identity-secret",
        metavar="BLOCK",
        help="name of a Prefect Secret block holding the age identity (instead of REDIS_DR_AGE_IDENTITY)",
    )
    parser.set_defaults(run=run)


def identities(args: argparse.Namespace) -> list[Any]:
    """age identities from a Prefect Secret block if named, else from REDIS_DR_AGE_IDENTITY."""
    if not args.age_identity_secret:
        return identities_from_env()
    quiet_prefect_console()
    from tasks.secrets import resolve_secret

    return parse_identities(resolve_secret(SecretRef(prefect_secret=args.age_identity_secret)))


def run(args: argparse.Namespace) -> int:
    """Resolve the backup, stream it through the checks, place the file."""
    refuse_existing(args.output.absolute())
    enable_progress_bars()
    storage, manifest = resolve_anywhere(args)
    say(
        f"fetching backup {manifest.id} of {manifest.instance} "
        f"({human_size(manifest.stored_size)} stored) from {storage.url} to {args.output}"
    )
    path = fetch_to_file(storage, manifest, args.output, identities(args))
    say(f"wrote {path}: {human_size(manifest.raw_size)}, sha256 verified, RDB v{manifest.source.rdb_version}")
    print(path)
    return 0
