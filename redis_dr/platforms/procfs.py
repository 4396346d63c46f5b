"""What /proc tells about redis-server processes on this host: which one serves a config file,
how it was started (argv, cwd, ids, executable), whether it still lives."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

from redis_dr.errors import ConfigError
from redis_dr.redis.conf import RedisConfig
from redis_dr.sandbox.redis_server import find_redis_binary

_NAMESPACES = ("mnt", "net")


@dataclass(frozen=True)
class Process:
    """One process, with its start time so that a reused pid is not taken for it."""

    pid: int
    started: int


#: Command names of a running server (unchanged by the process title): Debian's redis-server is a
#: symlink to redis-check-rdb, and a server started through the link's target is named after it.
_SERVER_COMMS = (b"redis-server", b"redis-check-rdb")


def redis_pids() -> Iterator[int]:
    """Pids whose command name is one a redis-server can have."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", "rb") as handle:
                comm = handle.read().strip()
        except OSError:
            continue
        if comm.startswith(_SERVER_COMMS):
            yield int(entry)


def process_of(pid: int) -> Process | None:
    """The process `pid` if it lives (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return Process(pid, int(fields[19]))


def alive(process: Process) -> bool:
    return process_of(process.pid) == process


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        raw = handle.read().split(b"\0")
    return [part.decode("utf-8", "surrogateescape") for part in raw if part] or [""]


def ids(pid: int) -> tuple[int, int, tuple[int, ...]]:
    """Real uid, real gid and supplementary groups of `pid`."""
    fields: dict[str, list[str]] = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["Uid"][0]), int(fields["Gid"][0]), tuple(int(g) for g in fields.get("Groups", []))


def same_namespaces(pid: int) -> bool:
    """Whether `pid` sees our files and our network (not a process inside a container)."""
    return all(os.readlink(f"/proc/{pid}/ns/{n}") == os.readlink(f"/proc/self/ns/{n}") for n in _NAMESPACES)


def names_file(argv: list[str], cwd: str, wanted: str) -> bool:
    """Whether the command line (not replaced by a title) names the config file `wanted`."""
    if len(argv) < 2 or argv[1].startswith("-"):
        return False
    return os.path.realpath(posixpath.join(cwd, argv[1])) == wanted


def check_ours(pid: int, argv: list[str], wanted: str) -> None:
    """A process found by its port whose visible command line names another config is not ours."""
    visible = len(argv) >= 2 and not argv[1].startswith("-") and posixpath.isabs(argv[1])
    if visible and os.path.realpath(argv[1]) != wanted:
        raise ConfigError(
            f"the redis-server listening where {wanted} says (pid {pid}) runs from {argv[1]}: "
            "check the local:// target"
        )


def listens(pid: int, config: RedisConfig, cwd: str) -> bool:
    """Whether `pid` holds a listening socket on the config's TCP port or unix socket."""
    sockets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                sockets.add(link[8:-1])
    if not sockets:
        return False
    if config.port and sockets & tcp_listeners(pid, config.port):
        return True
    if config.unixsocket:
        path = os.path.realpath(posixpath.join(cwd, config.unixsocket))
        return bool(sockets & unix_listeners(pid, path))
    return False


def tcp_listeners(pid: int, port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as handle:
            next(handle, None)
            for line in handle:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def unix_listeners(pid: int, path: str) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError), open(f"/proc/{pid}/net/unix") as handle:
        next(handle, None)
        for line in handle:
            fields = line.split()
            if len(fields) >= 8 and int(fields[3], 16) & 0x10000 and fields[7] == path:
                inodes.add(fields[6])
    return inodes


def executable(pid: int, argv0: str) -> str:
    """The file to run again: argv[0] when absolute, a bare name through PATH (keeping the name
    it was run by: the link, not its target), else /proc/<pid>/exe."""
    if posixpath.isabs(argv0) and os.path.exists(argv0):
        return argv0
    found = shutil.which(argv0) if "/" not in argv0 else None
    if found:
        return found
    with contextlib.suppress(OSError):
        exe = os.readlink(f"/proc/{pid}/exe")
        if not exe.endswith(" (deleted)") and os.path.exists(exe):
            return exe
    return shutil.which(argv0) or find_redis_binary()
