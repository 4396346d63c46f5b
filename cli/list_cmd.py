"""`redis-dr list`: the committed backups of an instance, newest first."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.common import add_location_arguments, open_catalog
from cli.output import print_table, say
from redis_dr.errors import IntegrityError
from redis_dr.units import human_size


def register(sub: Any) -> None:
    """Add the `list` subcommand."""
    parser = sub.add_parser("list", help="list committed backups, newest first")
    add_location_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON array of the manifests")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """List backups; unreadable manifests are reported after the others and make the exit code 5."""
    storage, catalog = open_catalog(args)
    listing = catalog.list()
    if args.json:
        print(json.dumps([m.model_dump(mode="json") for m in listing.manifests], indent=2))
    elif listing.manifests:
        print_table(
            ["BACKUP ID", "KEYS", "RAW", "STORED", "COMPRESSION", "ENCRYPTED", "MODE", "SECONDS"],
            [
                [
                    m.id,
                    f"{m.source.total_keys:,}",
                    human_size(m.raw_size),
                    human_size(m.stored_size),
                    m.files[0].compression.value,
                    "yes" if m.files[0].encrypted_to else "no",
                    m.mode,
                    f"{m.duration_seconds:.1f}",
                ]
                for m in listing.manifests
            ],
        )
    else:
        say(f"no backups of {args.instance} in {storage.url}")
    for problem in listing.unreadable:
        say(f"redis-dr: warning: {problem}")
    # Exit 5 (integrity), as every command whose catalog cannot be read in full.
    return IntegrityError.exit_code if listing.unreadable else 0
