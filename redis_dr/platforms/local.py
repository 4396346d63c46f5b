"""`local:///path/to/redis.conf`: a redis-server process on this host, started from that file.

The server is found in /proc: a `redis-server` process (same mount and network
namespaces as ours, so not one inside a container) whose command line names the
config file, or that listens on the file's port or unix socket; when /proc cannot
tell (redis-dr is not root and the server runs as another user), INFO's
`process_id` and `config_file` do. Redis overwrites its command line with its
process title (`redis-server 127.0.0.1:6379`, `set-proc-title yes` is the
default): extra `--name value` arguments given at start are then invisible, and
a restart by default is `redis-server <config file>` plus whatever arguments we
saw or gave ourselves. A server started with arguments that matter should name
its start in the environment file (`LocalControl`).

Data-directory files are reached with plain os calls (host_files.HostDataDir); every
rename stays inside the data directory, so a swap is atomic per name and free.
"""

from __future__ import annotations

import contextlib
import glob
import os
import posixpath
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import redis
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from redis_dr.errors import (
    AccessDeniedError,
    ConfigError,
    NotFoundError,
    PermanentError,
    ServerFailureError,
    TransientError,
)
from redis_dr.platforms import procfs
from redis_dr.platforms.base import (
    DataLayout,
    FileInfo,
    Platform,
    ServerState,
    Swap,
    check_name,
    check_tag,
)
from redis_dr.platforms.host_files import HostDataDir, check_swappable, os_error
from redis_dr.redis.conf import RedisConfig, parse_config
from redis_dr.redis.connection import PASSWORD_ENV, RedisEndpoint, open_client
from redis_dr.redis.server_log import exit_reason
from redis_dr.sandbox.redis_server import find_redis_binary

_POLL = 0.02  # seconds between two looks at an observed condition (a process, a port)
_LOG_TAIL = 256 * 1024
_VERSION = re.compile(r"\bv=(\d+\.\d+\.\d+)")
_UNIT = re.compile(r"^[A-Za-z0-9@_:.][A-Za-z0-9@_:.\\-]*$")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LocalControl(BaseModel):
    """How an environment file says a local server is stopped and started.

    `systemd_unit`: after SHUTDOWN NOSAVE, `systemctl stop UNIT` (so that systemd does
    not restart it; a plain `systemctl stop` would SIGTERM it, and SIGTERM saves over
    the data directory when save points are set); `systemctl start UNIT` to start.
    `start_command` / `stop_command`: argument lists run without a shell; the stop
    command runs after SHUTDOWN NOSAVE (to tell a supervisor), the start command
    instead of our own start. Either a unit or commands, not both.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    systemd_unit: str | None = Field(default=None, description="local: the systemd unit of the server.")
    start_command: list[str] | None = Field(default=None, description="local: argv that starts the server.")
    stop_command: list[str] | None = Field(default=None, description="local: argv that stops the server.")

    @field_validator("systemd_unit")
    @classmethod
    def _unit_name(cls, value: str | None) -> str | None:
        if value is not None and not _UNIT.match(value):
            raise ValueError(f"{value!r} is not a systemd unit name")
        return value

    @field_validator("start_command", "stop_command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0]):
            raise ValueError("a command is a non-empty list: the program, then its arguments")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> LocalControl:
        if self.systemd_unit and (self.start_command or self.stop_command):
            raise ValueError("give either systemd_unit or start_command/stop_command, not both")
        return self


@dataclass(frozen=True)
class StartRecipe:
    """How a redis-server was started, so that it is started again the same way."""

    executable: str  # the file run (redis-server may be a symlink to redis-check-rdb)
    argv: tuple[str, ...]  # argv[0] as it was (it selects server mode), the config file, options
    cwd: str  # the directory it was started in (a relative `dir` is relative to it)
    uid: int
    gid: int
    groups: tuple[int, ...]
    #: False when the process title hid the command line (extra options unknown).
    args_known: bool = True

    @property
    def options(self) -> list[str]:
        """The `--name value` arguments after the config file."""
        return list(self.argv[2:])


class LocalPlatform(Platform):
    """A redis-server on this host started as `redis-server CONFIG [--name value ...]`.

    Relative paths (a relative `dir`, `include`, `logfile`) are what redis-server
    makes of them: `dir` relative to the directory it was started in, and the rest
    relative to `dir` once it is read (redis-server changes into `dir` as it reads
    the line, so a running server's cwd in /proc is its data directory). The start
    directory is what we started it in, else derived from the running process's cwd
    by taking the relative `dir` off its end, else the config file's directory (where
    our default start runs it).

    The endpoint's password is the file's `requirepass`; a server that uses ACL users
    keeps their passwords hashed, so then the caller's `connect` endpoint (from
    `--redis-url` and REDIS_PASSWORD) is used for SHUTDOWN and INFO.
    """

    def __init__(
        self,
        config_path: str,
        *,
        control: LocalControl | None = None,
        connect: RedisEndpoint | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not posixpath.isabs(config_path):
            raise ConfigError(f"local target {config_path!r}: give the absolute path of its redis.conf")
        self.config_path = posixpath.normpath(config_path)
        self.target = f"local://{self.config_path}"
        self.control = control
        self._connect = connect
        self._env = os.environ if env is None else env
        self._recipe: StartRecipe | None = None
        self._started: tuple[procfs.Process, subprocess.Popen[bytes]] | None = None

    # --- what it is ------------------------------------------------------------------------

    def identity(self) -> str:
        """`local://<real path of the config>`: symlinks, `./` and `//` spell the same server."""
        return f"local://{os.path.realpath(self.config_path)}"

    def describe(self) -> str:
        """One line: the config file, and how it is started when not by us."""
        how = ""
        if self.control and self.control.systemd_unit:
            how = f", systemd unit {self.control.systemd_unit}"
        elif self.control and self.control.start_command:
            how = f", started by {' '.join(self.control.start_command)}"
        return f"redis-server on this host from {self.config_path}{how}"

    def endpoint(self) -> RedisEndpoint | None:
        """127.0.0.1 when it listens there (or on every interface), else its first bind
        address, else its unix socket; the password is `requirepass` (else REDIS_PASSWORD)."""
        config = self._config()
        password = config.requirepass or self._env.get(PASSWORD_ENV) or None
        if config.port:
            host = config.connect_host()
            if host is not None:
                return RedisEndpoint("redis", host=host, port=config.port, password=password)
        if config.unixsocket:
            path = posixpath.join(self.layout().dir, config.unixsocket)
            return RedisEndpoint("unix", path=path, password=password)
        return None

    def layout(self) -> DataLayout:
        """From the config file, its includes and the start options (see the class docstring)."""
        return self._config().layout(self._start_dir())

    def owner(self) -> tuple[int, int]:
        """The running process's uid/gid; else how it was started last; else the data dir's owner."""
        process = self._find()
        if process is not None:
            uid, gid, _ = procfs.ids(process.pid)
            return uid, gid
        if self._recipe is not None:
            return self._recipe.uid, self._recipe.gid
        directory = self.layout().dir
        with self._os_errors(directory):
            info = os.stat(directory)
        return info.st_uid, info.st_gid

    def free_bytes(self) -> int | None:
        """Free space for an unprivileged writer in the data directory's file system."""
        directory = self.layout().dir
        with self._os_errors(directory):
            fs = os.statvfs(directory)
        return fs.f_bavail * fs.f_frsize

    def server_binary_version(self) -> str | None:
        """`redis-server --version` of the binary the server runs (or would be started with)."""
        recipe = self._current_recipe()
        if recipe is not None:
            argv0, executable = recipe.argv[0], recipe.executable
        else:
            argv0, executable = "redis-server", find_redis_binary()
        try:
            done = subprocess.run(
                [argv0, "--version"], executable=executable, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=10, check=False, env=self._server_env(),
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = _VERSION.search(done.stdout)
        return found.group(1) if found else None

    # --- lifecycle -------------------------------------------------------------------------

    def state(self) -> ServerState:
        """RUNNING when a process of this config runs (a zombie does not run)."""
        return ServerState.RUNNING if self._find() is not None else ServerState.STOPPED

    def stop(self, timeout: float) -> None:
        """SHUTDOWN NOSAVE through the server, wait for its process to exit, then the
        environment file's stop (systemctl stop, or the stop command). Stopped: no-op."""
        process = self._find()
        if process is None:
            return
        self._remember(process)
        self._shutdown_nosave(timeout)
        self._wait_gone(process, timeout, "after SHUTDOWN NOSAVE")
        if self.control and self.control.systemd_unit:
            self._run(["systemctl", "stop", self.control.systemd_unit], timeout)
        elif self.control and self.control.stop_command:
            self._run(self.control.stop_command, timeout)

    def start(self, timeout: float) -> None:
        """Start it as the environment file says, else as it was started before (argv, cwd,
        uid/gid), else `redis-server CONFIG` in the config's directory as the data dir's owner.
        Returns once its process runs; raises when it exits first, with the log's reason."""
        if self._find() is not None:
            return
        if self.control and self.control.systemd_unit:
            self._run(["systemctl", "start", self.control.systemd_unit], timeout)
            self._wait_running(None, timeout)
            return
        if self.control and self.control.start_command:
            command = self.control.start_command
            recipe = StartRecipe(command[0], tuple(command), self._config_dir(), os.getuid(), os.getgid(), ())
        else:
            recipe = self._recipe or self._default_recipe()
        popen = self._spawn(recipe)
        self._wait_running(popen, timeout)

    def kill(self) -> None:
        """SIGKILL the server's process and wait for it to be gone."""
        process = self._find()
        if process is None:
            return
        self._remember(process)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        self._wait_gone(process, 30.0, "after SIGKILL")

    def exit_reason(self) -> str | None:
        """The warnings of the server's last run in its `logfile` (None without a log or while
        it runs), e.g. "Can't handle RDB format version 12; Fatal error loading the DB ..."."""
        if self._find() is not None:
            return None
        logfile = self._config().get("logfile") or ""
        if not logfile:
            return None
        path = posixpath.join(self.layout().dir, logfile)
        try:
            with open(path, "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - _LOG_TAIL))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return None
        return exit_reason(text)

    # --- files in the data directory -----------------------------------------------------

    def stat(self, name: str) -> FileInfo | None:
        """lstat of `name` (a symlink is reported as itself)."""
        return self._files().stat(name)

    def list_dir(self, name: str) -> list[FileInfo]:
        """The entries of directory `name` (`""` for the data directory itself), sorted."""
        return self._files().list_dir(name)

    def read_file(self, name: str) -> Iterator[bytes]:
        """Open now (NotFoundError at once), then stream the size it had at open in 1 MiB chunks."""
        return self._files().read_file(name)

    def stage_file(self, tag: str, name: str, chunks: Iterable[bytes], size: int) -> None:
        """Write `<staging>/name` through a `.partial` file: owner, mode 0600, fsync, rename."""
        self._files().stage_file(tag, name, chunks, size)

    def swap_in(self, tag: str, names: list[str]) -> Swap:
        """Renames only: each existing name goes aside, then its staged file (if any) into place."""
        check_tag(tag)
        self._check_swappable(names)
        if self._find() is not None:
            raise PermanentError(f"{self.describe()} still runs: stop it before swapping files in")
        return self._files().swap_in(tag, names)

    def swap_back(self, swap: Swap) -> None:
        """Placed names back to staging, then the names kept aside back into place; the
        aside directory (then empty) is removed. Tries every name, raises the first error."""
        self._files().swap_back(swap)

    def work_entries(self) -> list[str] | None:
        """The directories under WORK_DIR: earlier restores' aside copies and interrupted stagings."""
        return self._files().work_entries()

    def discard_staging(self, tag: str) -> None:
        """Remove `.redis-dr/staging-<tag>` (and `.redis-dr` when that leaves it empty)."""
        self._files().discard_staging(tag)

    # --- config and start directory ----------------------------------------------------

    def _config_dir(self) -> str:
        return posixpath.dirname(self.config_path)

    def _parse(self, options: list[str], start_dir: str) -> RedisConfig:
        config = parse_config(self.config_path, _read_config_file, glob_paths=glob.glob, cwd=start_dir)
        config.apply_args(options)
        return config

    def _config(self) -> RedisConfig:
        recipe = self._recipe
        if recipe is None:
            return self._parse([], self._config_dir())
        return self._parse(recipe.options, recipe.cwd)

    def _start_dir(self) -> str:
        recipe = self._current_recipe()
        return recipe.cwd if recipe else self._config_dir()

    def _current_recipe(self) -> StartRecipe | None:
        """How it was started: remembered, or read from the running process."""
        if self._recipe is None:
            process = self._find()
            if process is not None:
                self._remember(process)
        return self._recipe

    def _default_recipe(self) -> StartRecipe:
        """`redis-server CONFIG` in the config's directory, as the data directory's owner."""
        start_dir = self._config_dir()
        directory = self._parse([], start_dir).layout(start_dir).dir
        uid, gid = os.getuid(), os.getgid()
        if os.geteuid() == 0:
            with contextlib.suppress(OSError):
                info = os.stat(directory)
                uid, gid = info.st_uid, info.st_gid
        return StartRecipe(find_redis_binary(), ("redis-server", self.config_path), start_dir, uid, gid, ())

    # --- processes ---------------------------------------------------------------------------

    def _find(self) -> procfs.Process | None:
        """The running process of this config (see the module docstring), or None."""
        if self._started is not None and procfs.alive(self._started[0]):
            return self._started[0]
        config = self._config()
        wanted = os.path.realpath(self.config_path)
        unreadable = False
        for pid in procfs.redis_pids():
            process = procfs.process_of(pid)
            if process is None:
                continue
            try:
                if not procfs.same_namespaces(pid):
                    continue
                argv = procfs.cmdline(pid)
                cwd = os.readlink(f"/proc/{pid}/cwd")
                if procfs.names_file(argv, cwd, wanted) or procfs.listens(pid, config, cwd):
                    procfs.check_ours(pid, argv, wanted)
                    return process
            except PermissionError:
                unreadable = True
            except (FileNotFoundError, ProcessLookupError):
                continue
        return self._find_by_info(wanted) if unreadable else None

    def _find_by_info(self, wanted: str) -> procfs.Process | None:
        """Ask the server itself (INFO process_id and config_file) when /proc would not tell."""
        endpoint = self._connect or self.endpoint()
        if endpoint is None:
            return None
        client = open_client(endpoint, socket_timeout=5, connect_timeout=2)
        try:
            info = client.info("server")
        except redis.AuthenticationError:
            raise AccessDeniedError(self._auth_hint(endpoint)) from None
        except redis.ConnectionError:
            return None
        finally:
            client.close()
        config_file = str(info.get("config_file") or "")
        if not config_file or os.path.realpath(config_file) != wanted:
            return None
        return procfs.process_of(int(info["process_id"]))

    def _remember(self, process: procfs.Process) -> None:
        """Keep how the running process was started (ours: exactly what we ran)."""
        if self._started is not None and self._started[0] == process:
            return
        argv = procfs.cmdline(process.pid)
        cwd = os.readlink(f"/proc/{process.pid}/cwd")
        uid, gid, groups = procfs.ids(process.pid)
        titled = len(argv) == 1 and " " in argv[0]
        argv0 = argv[0].split(" ")[0] if titled else argv[0]
        options = [] if titled or len(argv) < 2 else argv[2:]
        start_dir, pin = self._start_dir_of(cwd, options)
        if pin:
            options = [*options, "--dir", cwd]
        self._recipe = StartRecipe(
            executable=procfs.executable(process.pid, argv0),
            argv=(argv0, self.config_path, *options),
            cwd=start_dir,
            uid=uid,
            gid=gid,
            groups=groups,
            args_known=not titled,
        )

    def _start_dir_of(self, cwd: str, options: list[str]) -> tuple[str, bool]:
        """The start directory of a process now in `cwd`; True when it cannot be told (pin `dir`)."""
        directory = self._parse(options, self._config_dir()).get("dir", ".") or "."
        if posixpath.isabs(directory):
            return self._config_dir(), False
        relative = posixpath.normpath(directory)
        if relative == ".":
            return cwd, False
        if ".." not in relative.split("/") and cwd.endswith("/" + relative):
            return cwd[: -len(relative) - 1] or "/", False
        return cwd, True

    def _spawn(self, recipe: StartRecipe) -> subprocess.Popen[bytes]:
        """Start detached (new session, stdin /dev/null, output to its logfile when that exists)."""
        as_root = os.geteuid() == 0
        if not as_root and recipe.uid != os.geteuid():
            raise AccessDeniedError(
                f"{self.describe()} runs as uid {recipe.uid}: redis-dr (uid {os.geteuid()}) cannot "
                "start it as that user; run redis-dr as root or give a start command"
            )
        output = self._start_output(recipe)
        try:
            popen = subprocess.Popen(
                list(recipe.argv), executable=recipe.executable, cwd=recipe.cwd, env=self._server_env(),
                stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True,
                user=recipe.uid if as_root else None, group=recipe.gid if as_root else None,
                extra_groups=list(recipe.groups) if as_root else None,
            )  # fmt: skip
        except OSError as exc:
            raise PermanentError(f"cannot run {recipe.argv[0]}: {exc.strerror or exc}") from None
        finally:
            if output is not subprocess.DEVNULL:
                os.close(output)
        threading.Thread(target=popen.wait, name=f"reap-redis-{popen.pid}", daemon=True).start()
        if self.control is None or not self.control.start_command:
            self._recipe = recipe
        return popen

    def _start_output(self, recipe: StartRecipe) -> int:
        """The logfile opened for appending when it exists (so start-up errors land there)."""
        logfile = self._parse(recipe.options, recipe.cwd).get("logfile") or ""
        if logfile:
            path = posixpath.join(self._parse(recipe.options, recipe.cwd).layout(recipe.cwd).dir, logfile)
            with contextlib.suppress(OSError):
                return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        return subprocess.DEVNULL

    def _wait_running(self, popen: subprocess.Popen[bytes] | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            process = self._find()
            if process is not None:
                if popen is not None and process.pid == popen.pid:
                    self._started = (process, popen)
                return
            code = popen.returncode if popen is not None else None
            if code:  # exited with an error before it ran (a zero is a daemonizing parent)
                reason = self.exit_reason() or "see its log"
                raise ServerFailureError(f"{self.describe()} exited at start (code {code}): {reason}")
            if time.monotonic() > deadline:
                raise TransientError(f"{self.describe()} was not running {timeout:.0f}s after its start")
            time.sleep(_POLL)

    def _wait_gone(self, process: procfs.Process, timeout: float, when: str) -> None:
        deadline = time.monotonic() + timeout
        while procfs.alive(process):
            if time.monotonic() > deadline:
                raise TransientError(f"{self.describe()} (pid {process.pid}) runs {timeout:.0f}s {when}")
            time.sleep(_POLL)
        self._started = None

    def _shutdown_nosave(self, timeout: float) -> None:
        endpoint = self._connect or self.endpoint()
        if endpoint is None:
            raise ConfigError(f"cannot tell how to reach {self.describe()}: give --redis-url")
        client = open_client(endpoint, socket_timeout=timeout, connect_timeout=min(5.0, timeout))
        try:
            # PING first: redis-py's shutdown() takes any ConnectionError for success, and a
            # refused password is one (AuthenticationError).
            client.ping()
            client.shutdown(nosave=True)
        except redis.BusyLoadingError:
            # Loading (a restore's start that is being rolled back): it refuses SHUTDOWN, and a
            # SIGTERM would only be acted on after the load, then save. What it holds came from
            # disk: nothing is lost by killing it.
            self.kill()
        except redis.AuthenticationError:
            raise AccessDeniedError(self._auth_hint(endpoint)) from None
        except redis.exceptions.NoPermissionError:
            raise AccessDeniedError(f"the user of {endpoint} may not SHUTDOWN: it needs +shutdown") from None
        except redis.ResponseError as exc:
            raise ServerFailureError(
                f"{endpoint.address} refused SHUTDOWN NOSAVE ({str(exc).splitlines()[0]}): "
                "stop it by hand or give a stop command in the environment file"
            ) from None
        except redis.ConnectionError as exc:
            if self._started is not None and procfs.alive(self._started[0]):
                # Ours, just started (a rollback): not listening yet, it holds only what is on disk.
                self.kill()
                return
            raise TransientError(f"cannot reach {endpoint.address} to stop it: {exc}") from None
        finally:
            client.close()

    def _auth_hint(self, endpoint: RedisEndpoint) -> str:
        return (
            f"{endpoint.address} refused the password (from requirepass in {self.config_path}, "
            f"else {PASSWORD_ENV}): set {PASSWORD_ENV} or give --redis-url with the right user"
        )

    def _run(self, argv: list[str], timeout: float) -> None:
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout, check=False, env=self._server_env(),
            )  # fmt: skip
        except FileNotFoundError:
            raise ConfigError(f"{argv[0]} not found (the start/stop of {self.target})") from None
        except subprocess.TimeoutExpired:
            raise TransientError(f"{' '.join(argv)} did not finish within {timeout:.0f}s") from None
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise ServerFailureError(f"{' '.join(argv)} failed (exit {done.returncode}): {said}")

    def _server_env(self) -> dict[str, str]:
        """A small environment for what we run: no password of ours goes to the server."""
        env = {"PATH": self._env.get("PATH", _DEFAULT_PATH)}
        env.update({key: self._env[key] for key in ("LANG", "LC_ALL", "TZ") if key in self._env})
        return env

    # --- file helpers ------------------------------------------------------------------------

    def _files(self) -> HostDataDir:
        """The data directory's files (symlinks in it are this host's: followed)."""
        return HostDataDir(self.layout().dir, self._placement_owner, follow_symlinks=True)

    def _path(self, name: str) -> str:
        return posixpath.join(self.layout().dir, check_name(name))

    def _check_swappable(self, names: list[str]) -> None:
        check_swappable(names)
        for name in names:
            if any(other.startswith(name + "/") for other in names):
                raise ConfigError(f"{name!r} and a name inside it cannot be swapped together")
            parent = posixpath.dirname(name)
            if parent and not os.path.isdir(self._path(parent)):
                raise NotFoundError(f"{self._path(parent)} does not exist: cannot place {name}")

    def _placement_owner(self) -> tuple[int, int]:
        uid, gid = self.owner()
        euid = os.geteuid()
        if euid != 0 and uid != euid:
            raise AccessDeniedError(
                f"the server runs as uid {uid}; redis-dr runs as uid {euid} and cannot give it "
                f"files in {self.layout().dir}: run redis-dr as root or as uid {uid}"
            )
        return uid, gid

    @contextlib.contextmanager
    def _os_errors(self, path: str) -> Iterator[None]:
        """OS errors as one-line project errors naming the path and the data directory."""
        try:
            yield
        except OSError as exc:
            raise os_error(exc, path, self._data_dir_for_messages()) from None

    def _data_dir_for_messages(self) -> str:
        try:
            return self.layout().dir
        except Exception:
            return self._config_dir()


# --- module helpers ----------------------------------------------------------------------


def _read_config_file(path: str) -> str:
    """A config file's text; missing or unreadable files are one-line errors naming it."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        raise NotFoundError(f"Redis config file {path} does not exist: check the local:// target") from None
    except PermissionError:
        raise AccessDeniedError(
            f"Redis config file {path} cannot be read (permission denied): "
            f"run redis-dr as root or as a user that may read it (now uid {os.geteuid()})"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a Redis config file") from None
    except OSError as exc:
        raise PermanentError(f"Redis config file {path} cannot be read: {exc.strerror or exc}") from None
