"""A throwaway Redis in a container: the restore test where the environment names an image.

The backup's RDB is written into a private 0700 directory of this host, which
the container mounts as its data directory; the server runs as our own user,
with host networking but no TCP port (`port 0`), listening only on a unix
socket in a second private directory that is mounted too. So its URL carries
no secret, and nothing is reachable from outside this host. The container is
labelled with our process id: it is removed on every way out, and a later run
removes any whose run died before it could (SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import redis

from redis_dr.errors import IntegrityError, NotFoundError, RedisDRError
from redis_dr.platforms.docker import _docker, _explanation, engine_errors
from redis_dr.restore.throwaway import THROWAWAY_DATABASES, LoadReport, write_plain

#: The label of every throwaway container: the id of the process that started it.
OWNER_LABEL = "redis-dr.throwaway-owner"
_DATA, _SOCKETS = "/data", "/run/redis-dr"
_SOCKET_NAME = "redis.sock"
_POLL = 0.05
#: Seconds allowed beyond what the file's size needs at a slow disk's rate (bytes/s).
_LOAD_GRACE, _SLOW_LOAD_RATE = 60.0, 20_000_000


@contextlib.contextmanager
def container_throwaway(image: str, rdb_chunks: Iterable[bytes]) -> Iterator[tuple[Path, LoadReport]]:
    """Write the RDB, run `image`'s redis-server on it, wait until loaded; yield (socket path, load
    report). The container and both directories are removed on exit, failures included."""
    with _engine("connecting to the Docker engine"):
        client = _docker().from_env()
    remove_orphans(client)
    data_dir = Path(tempfile.mkdtemp(prefix="redis-dr-throwaway-"))
    socket_dir = Path(tempfile.mkdtemp(prefix="redis-dr-sock-"))
    container: Any = None
    try:
        size = write_plain(rdb_chunks, data_dir / "dump.rdb")
        started = time.monotonic()
        container = _run(client, image, data_dir, socket_dir)
        socket_path = socket_dir / _SOCKET_NAME
        server = _wait_loaded(container, socket_path, _LOAD_GRACE + size / _SLOW_LOAD_RATE)
        persistence, version = server.info("persistence"), server.info("server")["redis_version"]
        server.close()
        yield (
            socket_path,
            LoadReport(
                rdb_version=0,
                rdb_bytes=size,
                keys_loaded=int(persistence.get("rdb_last_load_keys_loaded", 0)),
                keys_expired=int(persistence.get("rdb_last_load_keys_expired", 0)),
                seconds=time.monotonic() - started,
                redis_version=str(version),
            ),
        )
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(socket_dir, ignore_errors=True)


def remove_orphans(client: Any) -> list[str]:
    """Remove throwaway containers whose run no longer exists; their names."""
    removed = []
    with _engine("listing throwaway containers"):
        for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
            owner = container.labels.get(OWNER_LABEL, "")
            if not _alive(owner):
                container.remove(force=True)
                removed.append(container.name)
    return removed


def _alive(owner: str) -> bool:
    """Whether the process `pid:start-time` still runs (a reused pid has another start time)."""
    pid, _, started = owner.partition(":")
    try:
        return pid.isdigit() and _start_time(int(pid)) == started
    except OSError:
        return False


def owner() -> str:
    """This process as a throwaway container's owner: `pid:start-time`."""
    return f"{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    """A process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[19]


def _run(client: Any, image: str, data_dir: Path, socket_dir: Path) -> Any:
    """Create and start the container. Created, not `run`: that pulls a missing image from a
    registry (a typo'd name fetched from the network, minutes of a run); this says to pull it."""
    command = [
        "redis-server", "--port", "0",
        "--unixsocket", f"{_SOCKETS}/{_SOCKET_NAME}", "--unixsocketperm", "700",
        "--dir", _DATA, "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
        "--databases", str(THROWAWAY_DATABASES),
    ]  # fmt: skip
    doing = f"starting a throwaway container of {image}"
    with _engine(doing):
        container = client.containers.create(
            image,
            command,
            network_mode="host",
            user=f"{os.getuid()}:{os.getgid()}",
            volumes={
                str(data_dir): {"bind": _DATA, "mode": "rw"},
                str(socket_dir): {"bind": _SOCKETS, "mode": "rw"},
            },
            labels={OWNER_LABEL: owner()},
        )
    try:
        with _engine(doing):
            container.start()
    except BaseException:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        raise
    return container


def _wait_loaded(container: Any, socket_path: Path, timeout: float) -> redis.Redis:
    """A client on the container's socket once it answers with its data loaded."""
    deadline = time.monotonic() + timeout
    while True:
        with _engine("watching the throwaway container"):
            container.reload()
            if container.status in ("exited", "dead"):
                lines = container.logs(tail=5).decode(errors="replace").strip().splitlines()
                reason = lines[-1].split(" # ", 1)[-1] if lines else f"it {container.status}"
                raise IntegrityError(f"the throwaway container could not load the backup: {reason[:200]}")
        if socket_path.exists():
            server = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=10)
            try:
                if int(server.info("persistence").get("loading", 1)) == 0:
                    return server
            except (redis.BusyLoadingError, redis.ConnectionError):
                pass
            server.close()
        if time.monotonic() > deadline:
            raise IntegrityError(f"the throwaway container did not load the backup within {timeout:.0f} s")
        time.sleep(_POLL)


def _engine(doing: str) -> contextlib.AbstractContextManager[None]:
    """Engine errors as one line; a missing image says to pull or build it (it is never pulled)."""

    def image_missing(exc: Exception) -> RedisDRError | None:
        if not isinstance(exc, _docker().errors.ImageNotFound):
            return None  # another 404 (a container gone): the engine's own words
        return NotFoundError(f"{doing}: image not found ({_explanation(exc)}): pull or build it first")

    return engine_errors(doing, not_found=image_missing)
