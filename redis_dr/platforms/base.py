"""The platform contract: where a target Redis lives and how its data files are reached.

A platform adapter (a process on this host, a Docker container, later a
Kubernetes StatefulSet) knows how to stop, start and kill its server, how to
tell whether it runs, and how to read, stage and swap files in its data
directory with the owner the server runs as. The restore flow speaks only this
contract, so a new platform needs no change there.

File names are relative to the server's data directory (`dir`) and use `/`:
`dump.rdb`, `appendonlydir`, `appendonlydir/appendonly.aof.manifest`. Every
adapter keeps its own work under `WORK_DIR` inside the data directory, so that
a rename into place is free and nothing of ours is ever outside the volume:

    .redis-dr/staging-<tag>/<name>   files written before the stop, not yet live
    .redis-dr/aside-<tag>/<name>     the previous files, moved (never deleted)

A restore stages its files while the target still runs, stops it, swaps the
staged files in (the previous ones go aside), starts it, and on any failure
swaps back. Staging costs no downtime; the swap is renames only.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from redis_dr.errors import ConfigError
from redis_dr.redis.connection import RedisEndpoint

#: Our directory inside the target's data directory.
WORK_DIR = ".redis-dr"
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")
_NAME_PART = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.+-]*$")


def check_name(name: str) -> str:
    """A data-dir relative name: `/`-separated plain parts, no `..`, not absolute; else ConfigError."""
    parts = name.split("/")
    if not name or any(part in ("", ".", "..") or not _NAME_PART.match(part) for part in parts):
        raise ConfigError(f"{name!r} is not a file name inside the data directory")
    return name


def check_tag(tag: str) -> str:
    """A restore's tag (names its staging and aside directories); else ConfigError."""
    if not _TAG.match(tag):
        raise ConfigError(f"{tag!r} is not a usable restore tag (letters, digits, '.', '_', '-')")
    return tag


def staging_dir(tag: str) -> str:
    """Where a restore tagged `tag` stages its files, relative to the data directory."""
    return f"{WORK_DIR}/staging-{check_tag(tag)}"


def aside_dir(tag: str) -> str:
    """Where a restore tagged `tag` keeps the previous files, relative to the data directory."""
    return f"{WORK_DIR}/aside-{check_tag(tag)}"


class ServerState(StrEnum):
    """What the platform says about its server process (not whether Redis answers)."""

    RUNNING = "running"
    STOPPED = "stopped"
    ABSENT = "absent"  # e.g. the container does not exist


@dataclass(frozen=True)
class DataLayout:
    """Where the server keeps its data and how it persists, as it will be at its next start.

    Read from what the server starts with (its config file and arguments), not from
    CONFIG GET alone: a CONFIG SET that was never rewritten is gone after a restart.
    """

    dir: str  # absolute, in the platform's own file-system view (inside the container for Docker)
    dbfilename: str = "dump.rdb"
    appendonly: bool = False
    appenddirname: str = "appendonlydir"
    appendfilename: str = "appendonly.aof"
    #: Whether the server saves an RDB on shutdown / by schedule (`save` has points).
    save_points: bool = True

    @property
    def aof_manifest(self) -> str:
        """The multi-part AOF manifest's name, relative to the data directory."""
        return f"{self.appenddirname}/{self.appendfilename}.manifest"


@dataclass(frozen=True)
class FileInfo:
    """One entry of the data directory."""

    name: str  # relative to the data directory
    size: int
    is_dir: bool
    uid: int
    gid: int
    mode: int  # permission bits only


@dataclass
class Swap:
    """What `swap_in` did, so that `swap_back` can undo exactly that."""

    tag: str
    #: Names that existed before and now live under `aside_dir(tag)`.
    moved_aside: list[str] = field(default_factory=list)
    #: Names that now hold the staged files.
    placed: list[str] = field(default_factory=list)


class Platform(abc.ABC):
    """A target Redis server and its data directory. See the module docstring."""

    #: The target as the user named it, e.g. `docker://redis`, `local:///etc/redis/redis.conf`.
    target: str

    # --- what it is ------------------------------------------------------------------------

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for the plan: what and where the target is (no secrets)."""

    def identity(self) -> str:
        """One name for the target however it was spelled (a config's real path, a container's
        id): two operations on the same server see the same name (the restore lock is named so)."""
        return self.target

    @abc.abstractmethod
    def endpoint(self) -> RedisEndpoint | None:
        """How to reach the server, when the platform can tell (port and password from its
        config); None when it cannot (then the user gives `--redis-url`)."""

    @abc.abstractmethod
    def layout(self) -> DataLayout:
        """The server's data directory and persistence settings at its next start."""

    @abc.abstractmethod
    def owner(self) -> tuple[int, int]:
        """uid and gid that placed files get: the user the server runs as."""

    @abc.abstractmethod
    def free_bytes(self) -> int | None:
        """Free space in the data directory's file system; None when it cannot be told."""

    @abc.abstractmethod
    def server_binary_version(self) -> str | None:
        """The Redis version the platform would start (e.g. `7.0.15`), without contacting it;
        None when it cannot be told this way (then INFO says)."""

    # --- lifecycle -------------------------------------------------------------------------

    @abc.abstractmethod
    def state(self) -> ServerState:
        """Whether the server process runs."""

    @abc.abstractmethod
    def stop(self, timeout: float) -> None:
        """Stop the server so that it does not save its dataset over the data directory
        (SHUTDOWN NOSAVE or the platform's equivalent), and so that nothing (a restart
        policy, a supervisor) starts it again until `start`. Stopped already: no-op."""

    @abc.abstractmethod
    def start(self, timeout: float) -> None:
        """Start the server as it is normally started, and put back anything `stop` changed
        to keep it down (a restart policy). Returns once the process runs, not once it loaded."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL the server (drills): no save, no clean shutdown, no restart by us."""

    @abc.abstractmethod
    def exit_reason(self) -> str | None:
        """When the server is not running: the last lines of its log that say why
        (e.g. "Can't handle RDB format version 12"); None when nothing tells."""

    # --- files in the data directory -----------------------------------------------------

    @abc.abstractmethod
    def stat(self, name: str) -> FileInfo | None:
        """The entry `name`, or None if it does not exist."""

    @abc.abstractmethod
    def list_dir(self, name: str) -> list[FileInfo]:
        """The entries directly inside directory `name` (names relative to the data dir)."""

    @abc.abstractmethod
    def read_file(self, name: str) -> Iterator[bytes]:
        """Stream a file's bytes. A file that grows while read yields at least the size it
        had when the read began (an AOF being appended to)."""

    @abc.abstractmethod
    def stage_file(self, tag: str, name: str, chunks: Iterable[bytes], size: int) -> None:
        """Write `chunks` (exactly `size` bytes) to `staging_dir(tag)/name`, owned by `owner()`,
        mode 0600 for files and 0700 for directories it creates. The server may be running."""

    @abc.abstractmethod
    def swap_in(self, tag: str, names: list[str]) -> Swap:
        """With the server stopped: move each existing `name` (file or directory) to
        `aside_dir(tag)/name`, then move `staging_dir(tag)/name`, where staged, to `name`
        (a name that was not staged is only moved aside). Renames only, no copies.
        Returns what it did; on failure part-way it undoes what it did before raising."""

    @abc.abstractmethod
    def swap_back(self, swap: Swap) -> None:
        """Undo `swap_in`: the placed names go back under `staging_dir(swap.tag)` and the
        names moved aside return. The data directory is then as before `swap_in`."""

    def work_entries(self) -> list[str] | None:
        """Names directly under WORK_DIR (earlier restores' aside and staging directories),
        or None when the platform cannot list them cheaply (the plan then does not say)."""
        return None

    @abc.abstractmethod
    def discard_staging(self, tag: str) -> None:
        """Remove `staging_dir(tag)` and what is in it (never anything else)."""
