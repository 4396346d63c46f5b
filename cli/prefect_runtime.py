"""Running flows from a terminal: a Prefect API to talk to, and console output without tracebacks."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

from redis_dr.errors import TransientError
from redis_dr.host_lease import HOST_MODE, LEASE_MODE_ENV
from redis_dr.sandbox.ports import free_port
from redis_dr.sandbox.processes import stop_process

LOGGING_CONFIG = Path(__file__).with_name("logging.yml")
_PR_SET_PDEATHSIG = 1


class NoTracebacks(logging.Filter):
    """Keep the log line, drop the traceback: the CLI prints one clear error line itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_prefect_console() -> None:
    """Configure Prefect (before its first import) for a terminal: no tracebacks, no telemetry.

    Settings already present in the environment win.
    """
    os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", str(LOGGING_CONFIG))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import prefect  # noqa: F401  (importing Prefect sets up its logging from the file above)


def _stop_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook that makes the child get SIGTERM when we die, even by SIGKILL (Linux only).

    libc is looked up here, in the parent: the hook itself only makes the system call.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


#: What the temporary API's process may inherit: the interpreter's and Prefect's own settings,
#: locale, time zone and temp dirs. Nothing else, so REDIS_PASSWORD, cloud keys, age identities
#: and any other secret of the command's environment stay out of its /proc/<pid>/environ.
_API_ENV_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
     "VIRTUAL_ENV", "LD_LIBRARY_PATH", "SQLITE_TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR"}
)  # fmt: skip
_API_ENV_PREFIXES = ("LC_", "PYTHON", "PREFECT_")
_API_ENV_DENIED = frozenset({"PREFECT_API_KEY"})  # a Prefect Cloud key: a server never needs it


def api_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` the temporary Prefect API needs: an allow-list, so it holds no secret.

    PREFECT_* stays: it is the server's own configuration (its home, its database URL).
    """
    return {
        name: value
        for name, value in environ.items()
        if (name in _API_ENV_NAMES or name.startswith(_API_ENV_PREFIXES)) and name not in _API_ENV_DENIED
    }


def _lock_prefect_home() -> int | None:
    """Wait for, then hold, an exclusive lock on PREFECT_HOME (None if it cannot be had)."""
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(home / ".redis-dr-api-start.lock", os.O_CREAT | os.O_RDWR, 0o600)
    except OSError:
        return None  # the server will say what is wrong with its home
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


class TemporaryPrefectApi:
    """The API server Prefect starts by itself when no API URL is set, started and stopped by us.

    Prefect would start it only when the first flow runs, after this process has
    imported Prefect; started first, its ~3 s start-up overlaps our imports. It is
    the same application Prefect runs (its `SubprocessASGIServer`): the REST API
    without UI or background services, on Prefect's usual local database, bound to
    127.0.0.1. It dies with this process, even when this process is killed.

    Two commands started at once would create or migrate the same SQLite database
    together, and one server failed to start ("Application startup failed"): a
    lock on PREFECT_HOME is held from the start until the server answers.
    """

    def __init__(self, startup_timeout: float = 60.0) -> None:
        self.startup_timeout = startup_timeout
        self._startup_lock = _lock_prefect_home()
        self.port = free_port()
        self._log: IO[bytes] = tempfile.TemporaryFile(prefix="redis-dr-prefect-api-")  # noqa: SIM115 (closed by stop)
        env = {
            **api_environment(os.environ),
            "PREFECT_UI_ENABLED": "0",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_stop_with_parent_hook(),
            start_new_session=True,  # Ctrl-C interrupts the command, which then stops the server in order
        )  # fmt: skip

    @property
    def api_url(self) -> str:
        """The URL Prefect clients use: `http://127.0.0.1:PORT/api`."""
        return f"http://127.0.0.1:{self.port}/api"

    def wait_ready(self) -> str:
        """Block until the API answers its health check; return its URL."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                self._release_startup_lock()
                raise TransientError(f"the temporary Prefect API did not start: {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        self._release_startup_lock()
                        return self.api_url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TransientError(
                    f"the temporary Prefect API did not answer within {self.startup_timeout:.0f}s "
                    "(busy machine?); or set PREFECT_API_URL to a running Prefect server"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (it finishes its requests first) and forget it."""
        process, self._process = self._process, None
        self._release_startup_lock()
        if process is None:
            return
        stop_process(process, grace=10)
        self._log.close()

    def _release_startup_lock(self) -> None:
        fd, self._startup_lock = self._startup_lock, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases its flock

    def _log_tail(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "it exited without a message"


#: How long a configured Prefect API may take to connect and to answer its health check.
API_HEALTH_TIMEOUT = 5.0
_UNSET_HINT = "unset PREFECT_API_URL to run with a temporary local API"


def unreachable_api(url: str, reason: str) -> TransientError:
    """The one line for a configured Prefect API that does not answer."""
    return TransientError(
        f"the Prefect API at {_shown(url)} does not answer ({reason}): start it, or {_UNSET_HINT}"
    )


def _shown(url: str) -> str:
    """The API URL without any user:password part."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_api_answers(url: str, timeout: float = API_HEALTH_TIMEOUT) -> None:
    """Raise TransientError unless the Prefect API at `url` answers `GET <url>/health` in time.

    One attempt, `timeout` to connect and again to read. Any HTTP answer counts
    (Prefect Cloud may answer 401 without a key): the aim is to refuse, in seconds,
    a server that is down or hung, before a flow waits minutes on it.
    """
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise unreachable_api(url, str(getattr(reason, "strerror", None) or reason)) from None
    except TimeoutError:
        raise unreachable_api(url, f"no answer within {timeout:.0f} s") from None
    except (OSError, ValueError) as exc:  # reset, closed without an answer, a malformed URL
        raise unreachable_api(url, str(exc) or type(exc).__name__) from None


def _deliver_pending_logs_and_events() -> None:
    """Let Prefect send its queued run logs and events before the API they go to stops."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    # Their "Still processing items: N items remaining..." is this very wait: not for the terminal.
    loggers = [logging.getLogger(worker.__name__) for worker in (APILogWorker, EventsWorker)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        APILogWorker.drain_all(timeout=5)
        EventsWorker.drain_all(timeout=5)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def host_leases() -> Iterator[None]:
    """Flows keep instances apart with lock files of this host: this API revokes no expired lease,
    so a lease a killed run held there would stay held (flows/lease.py)."""
    previous = os.environ.get(LEASE_MODE_ENV)
    os.environ[LEASE_MODE_ENV] = HOST_MODE
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(LEASE_MODE_ENV, None)
        else:
            os.environ[LEASE_MODE_ENV] = previous


def start_temporary_api_early() -> TemporaryPrefectApi | None:
    """Start the temporary API now, when `prefect_api()` would start one, so that its start-up
    overlaps work done before the flow runs; hand it to `prefect_api(started=...)`, which stops it."""
    if "prefect" in sys.modules or os.environ.get("PREFECT_API_URL"):
        return None
    return TemporaryPrefectApi()


@contextlib.contextmanager
def prefect_api(started: TemporaryPrefectApi | None = None) -> Iterator[None]:
    """Give the flows run in this block a Prefect API.

    A configured one (PREFECT_API_URL in the environment or the Prefect profile,
    or a test harness) is used as it is, and so records the runs. Otherwise a
    `TemporaryPrefectApi` runs for the length of the block, as Prefect's
    ephemeral mode would, started before Prefect is imported.
    """
    server = started
    if server is None and "prefect" not in sys.modules and not os.environ.get("PREFECT_API_URL"):
        server = TemporaryPrefectApi()
    try:
        quiet_prefect_console()
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            PREFECT_UI_URL,
            get_current_settings,
            temporary_settings,
        )

        settings = get_current_settings()
        if settings.api.url or not settings.server.ephemeral.enabled:
            if server is not None:  # the profile names a server (or forbids a temporary one)
                server.stop()
            if settings.api.url:
                check_api_answers(settings.api.url)
            try:
                yield
            except RuntimeError as exc:  # raised by Prefect's client when the API goes away later
                if settings.api.url and "Failed to reach API" in str(exc):
                    raise unreachable_api(settings.api.url, "it stopped answering") from None
                raise
            return
        if server is None:
            server = TemporaryPrefectApi()
        # No "View at <UI link>" lines: this server has no UI and is gone when we exit. No flow-run
        # heartbeats: nothing watches them on a temporary API, and Prefect's heartbeat thread, which
        # sleeps in whole seconds, held the end of every run for up to a second.
        url = server.wait_ready()
        temporary = {PREFECT_API_URL: url, PREFECT_UI_URL: "", PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        with temporary_settings(updates=temporary), host_leases():
            try:
                yield
            finally:
                _deliver_pending_logs_and_events()
    finally:
        if server is not None:
            server.stop()
