"""A throwaway redis-server process on a free loopback port (or only on a unix socket)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_dr.errors import ConfigError
from redis_dr.sandbox.ports import free_port, wait_for_port
from redis_dr.sandbox.processes import die_with_parent, stop_process


def find_redis_binary(name: str = "redis-server") -> str:
    """Return the path of a Redis binary, or say how to install it."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/local/bin/{name}") if Path(p).exists()), None
    )
    if path is None:
        raise ConfigError(f"{name} not found: install it with 'apt-get install redis-server redis-tools'")
    return path


class RedisServer:
    """Start a redis-server in its own directory; stop it and remove the directory on exit.

    `config` lines are passed as command-line options (`{"save": ""}` becomes
    `--save ""`). The server binds 127.0.0.1 only; with `tcp=False` it listens on
    no port at all, only on the `unixsocket` its config names. With
    `die_with_parent`, the kernel kills it when the thread that started it ends
    (even by SIGKILL), so that no server outlives a killed run.
    """

    def __init__(
        self,
        config: dict[str, str] | None = None,
        *,
        password: str | None = None,
        data_dir: Path | None = None,
        port: int | None = None,
        tcp: bool = True,
        die_with_parent: bool = False,
    ) -> None:
        if not tcp and not (config or {}).get("unixsocket"):
            raise ValueError("a server without TCP needs a unixsocket in its config")
        self.tcp = tcp
        self.die_with_parent = die_with_parent
        self.port = (port or free_port()) if tcp else 0
        self.password = password
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="redis-dr-redis-"))
        self.config = {"save": "", "appendonly": "no", **(config or {})}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL without credentials (unix:// for a server without TCP)."""
        if not self.tcp:
            return f"unix://{self.config['unixsocket']}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.data_dir}",
            "daemonize no",
            "protected-mode yes",
            f"logfile {self.data_dir / 'redis.log'}",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        lines += [f"{key} {value if value != '' else chr(34) * 2}" for key, value in self.config.items()]
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        self._process = subprocess.Popen(
            [find_redis_binary(), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent if self.die_with_parent else None,
        )
        try:
            deadline = time.monotonic() + timeout
            if self.tcp:
                wait_for_port(self.port, timeout)
            while True:
                try:
                    self.client().ping()
                    break
                except redis.BusyLoadingError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
                except redis.ConnectionError:  # a unix socket not there yet
                    if self.tcp or time.monotonic() > deadline or self._process.poll() is not None:
                        raise
                    time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, **kwargs: object) -> redis.Redis:
        """A redis-py client for this server (admin credentials)."""
        if not self.tcp:
            socket_path = self.config["unixsocket"]
            return redis.Redis(unix_socket_path=socket_path, password=self.password, **kwargs)  # type: ignore[arg-type]
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        """The server's log so far."""
        path = self.data_dir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server without saving and remove its directory if we created it."""
        process, self._process = self._process, None  # safe if two threads stop it
        if process is not None:
            # NOSAVE: a throwaway server's data is not wanted, and a failing save blocks SIGTERM.
            with contextlib.suppress(redis.RedisError):
                # No reconnect retries: the server closing the connection is the success case
                # (redis-py's default retries spent ~3.7 s against a server that had gone).
                self.client(socket_timeout=2, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)).shutdown(
                    nosave=True
                )
            stop_process(process, grace=3)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

