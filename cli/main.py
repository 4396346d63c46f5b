"""`redis-dr`: entry point, argument parsing and the one place errors become exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from cli import backup_cmd, demo_cmd, fetch_cmd, list_cmd
from cli.output import say
from redis_dr import __version__
from redis_dr.errors import RedisDRError

COMMANDS = (backup_cmd, list_cmd, fetch_cmd, demo_cmd)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="redis-dr",
        description="Redis backup, restore and disaster recovery.",
        epilog="Passwords: put them in REDIS_PASSWORD (never on the command line).",
    )
    parser.add_argument("--version", action="version", version=f"redis-dr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every expected failure becomes one line on stderr and an exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except RedisDRError as exc:
        _explain(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        say("redis-dr: interrupted; nothing was committed by the interrupted step")
        return 130
    except Exception as exc:
        _explain(exc, unexpected=True)
        return 1


def _explain(exc: BaseException, *, unexpected: bool = False) -> None:
    if os.environ.get("REDIS_DR_DEBUG"):
        traceback.print_exception(exc)
    kind = f"unexpected {type(exc).__name__}: " if unexpected else ""
    say(f"redis-dr: error: {kind}{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if unexpected and not os.environ.get("REDIS_DR_DEBUG"):
        say("redis-dr: set REDIS_DR_DEBUG=1 for the full traceback")


if __name__ == "__main__":
    sys.exit(main())
