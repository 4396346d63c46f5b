"""`redis-dr prune`: placeholder while it is being built (replaced within issue 8)."""

from __future__ import annotations

import argparse
from typing import Any

from redis_dr.errors import UnsupportedError


def register(sub: Any) -> None:
    """Add the `prune` subcommand."""
    parser = sub.add_parser("prune", help="(being built)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Not built yet."""
    raise UnsupportedError("redis-dr prune is being built")
