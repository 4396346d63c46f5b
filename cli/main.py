"""`redis-dr`: entry point, argument parsing and the one place errors become exit codes."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from types import FrameType

from cli import (
    backup_cmd,
    demo_cmd,
    deploy_cmd,
    drill_cmd,
    fetch_cmd,
    list_cmd,
    prune_cmd,
    replicate_cmd,
    restore_cmd,
    restore_test_cmd,
    validate_cmd,
)
from cli.output import say
from redis_dr import __version__
from redis_dr.errors import RedisDRError

COMMANDS = (
    backup_cmd, restore_cmd, list_cmd, fetch_cmd, prune_cmd, replicate_cmd, validate_cmd, restore_test_cmd,
    drill_cmd, deploy_cmd, demo_cmd,
)  # fmt: skip

#: Exit codes of an interrupted command: 128 + the signal's number, as a shell reports it.
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
INTERRUPTED = (
    "redis-dr: interrupted: the step that was running committed nothing; "
    "a backup committed before it stays committed (see 'redis-dr list')"
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that it unwinds (and stops the temporary API) alike."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the command runs, SIGTERM interrupts it as Ctrl-C does (unless SIGTERM is ignored).

    A process started with SIGTERM ignored keeps ignoring it, as with SIGINT.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    args: argparse.Namespace | None = None
    try:
        with sigterm_as_interrupt():
            args = build_parser().parse_args(argv)  # inside: an argument's `type=` may raise ConfigError
            return int(args.run(args) or 0)
    except RedisDRError as exc:
        _explain(exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        say(getattr(args, "interrupted", None) or INTERRUPTED)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
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
