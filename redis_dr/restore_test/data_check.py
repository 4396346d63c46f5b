"""The pluggable data check: the application's own test, run against the throwaway server.

A command (argv, no shell) gets the throwaway's URL (`unix:///...`) in
`REDIS_URL` and in place of `{url}` in its arguments, and its socket's path in
`REDIS_SOCKET` and `{socket}` (`redis-cli -s {socket} ...`); exit 0 passes. Its environment is a clean one:
PATH, HOME, the locale and time zone, plus the variables the request names in
`check_env`, never the worker's secrets (REDIS_PASSWORD, cloud keys). A Python
entry point (`package.module:function`) is called with the URL and returns
True/False, `(ok, message)`, or raises. Both have the same time limit; a command's
whole process group is killed when it ends (a daemon it forked included). The
report keeps the exit status and the last line the check printed (printable
characters only: it reaches terminals and the artifact).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from redis_dr.errors import ConfigError
from redis_dr.sandbox.processes import die_with_parent

#: The worker's variables every check gets (no secrets among them).
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
URL_ENV = "REDIS_URL"
SOCKET_ENV = "REDIS_SOCKET"
URL_PLACEHOLDER = "{url}"
SOCKET_PLACEHOLDER = "{socket}"
UNIX_SCHEME = "unix://"
_TAIL_BYTES = 64 * 1024
_LINE_CHARS = 300


class DataCheckResult(BaseModel):
    """What the data check said."""

    check: str  # the command or entry point, for the report
    passed: bool
    exit_status: int | None = None  # a command's; None for an entry point
    last_line: str = ""
    seconds: float = 0.0


def run_command_check(
    argv: list[str], url: str, *, timeout: float, env: Mapping[str, str] | None = None, passthrough: list[str]
) -> DataCheckResult:
    """Run the check command against `url`; a missing program is a ConfigError, a timeout a failure."""
    source = os.environ if env is None else env
    child_env = {name: source[name] for name in (*BASE_ENV, *passthrough) if name in source}
    socket = url.removeprefix(UNIX_SCHEME).split("?", 1)[0]
    child_env.update({URL_ENV: url, SOCKET_ENV: socket})
    args = [part.replace(URL_PLACEHOLDER, url).replace(SOCKET_PLACEHOLDER, socket) for part in argv]
    shown = " ".join(argv)
    started = time.monotonic()
    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                env=child_env, start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        except FileNotFoundError:
            raise ConfigError(f"data check {argv[0]!r} not found: give the program's path") from None
        except PermissionError:
            raise ConfigError(f"data check {argv[0]!r} is not executable") from None
        try:
            status: int | None = process.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            status, timed_out = None, True
        finally:  # interrupted or done: neither the check nor what it forked outlives the test
            _kill_group(process)
        line = _last_line(output)
    seconds = time.monotonic() - started
    if timed_out:
        line = f"timed out after {timeout:.0f} s" + (f"; last said: {line}" if line else "")
    return DataCheckResult(
        check=shown, passed=status == 0, exit_status=status, last_line=line, seconds=seconds
    )


def run_entry_point_check(entry_point: str, url: str, *, timeout: float | None = None) -> DataCheckResult:
    """Call `package.module:function(url)`; an import failure is a ConfigError, a raise a failure.

    It runs in a daemon thread so that one hanging past `timeout` fails the check (the thread
    is left behind: Python cannot stop it; the throwaway it talks to is removed anyway)."""
    module_name, _, function_name = entry_point.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # ImportError, or whatever the module raises (or a SyntaxError) at import
        raise ConfigError(f"data check {entry_point!r} cannot be loaded: {_one_line(exc)}") from None
    started = time.monotonic()
    answers: list[DataCheckResult] = []
    context = contextvars.copy_context()  # the run's logger and settings, as in the caller
    caller = threading.Thread(
        target=lambda: answers.append(context.run(_call_entry_point, entry_point, function, url)),
        name=f"data check {entry_point}",
        daemon=True,
    )
    caller.start()
    caller.join(timeout)
    seconds = time.monotonic() - started
    if not answers:
        return DataCheckResult(
            check=entry_point, passed=False, last_line=f"timed out after {timeout:g} s", seconds=seconds
        )
    return answers[0].model_copy(update={"seconds": seconds})


def _call_entry_point(entry_point: str, function: Any, url: str) -> DataCheckResult:
    """The entry point's answer as a result (its seconds are the caller's to set)."""
    try:
        answer: Any = function(url)
    except SystemExit as exc:
        return DataCheckResult(
            check=entry_point, passed=False,
            last_line=f"called sys.exit({exc.code!r}): return True/False or (ok, message) instead",
        )  # fmt: skip
    except Exception as exc:
        return DataCheckResult(check=entry_point, passed=False, last_line=_one_line(exc))
    if isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], bool):
        ok, message = answer
        return DataCheckResult(check=entry_point, passed=ok, last_line=_printable(str(message)))
    if isinstance(answer, bool):
        return DataCheckResult(check=entry_point, passed=answer, last_line="")
    what = type(answer).__name__
    if isinstance(answer, tuple) and len(answer) == 2:
        what = f"({type(answer[0]).__name__}, ...)"
    return DataCheckResult(
        check=entry_point, passed=False, last_line=f"returned {what}, not True/False or (ok, message)"
    )


def _one_line(exc: BaseException) -> str:
    """'RuntimeError: its message', printable and shortened."""
    return _printable(f"{type(exc).__name__}: {exc}".rstrip(": "))


def _printable(text: str) -> str:
    """Text on one line of printable characters (no terminal escapes), at most _LINE_CHARS."""
    return "".join(char if char.isprintable() else " " for char in text).strip()[:_LINE_CHARS]


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _last_line(output: Any) -> str:
    """The last non-empty line the check printed (from its last 64 KiB), shortened."""
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - _TAIL_BYTES))
    lines = [_printable(line) for line in output.read().decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""
