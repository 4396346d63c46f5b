"""`redis-dr replicate`: placeholder while it is being built (replaced within issue 8)."""

from __future__ import annotations

import argparse
from typing import Any

from redis_dr.errors import UnsupportedError


def register(sub: Any) -> None:
    """Add the `replicate` subcommand."""
    parser = sub.add_parser("replicate", help="(being built)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Not built yet."""
    raise UnsupportedError("redis-dr replicate is being built")
