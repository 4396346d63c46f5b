"""`docker://CONTAINER` and `compose://PROJECT/SERVICE`: a Redis container, through the Docker SDK.

Everything goes through the engine's API, so it works with a remote engine
(DOCKER_HOST) and on images that have no shell, tar or chown:

- The layout comes from the container's command (`redis-server [file] --opt val`) and
  the config file it names, read out of the container with the archive API.
- Files are read, staged and swapped with the archive API only (see docker_tar.py for
  what the engine does with an archive): ownership and mode travel in the tar headers;
  a "rename" is a hard-link entry plus the old name replaced; a name is removed by an
  entry that replaces it and then fails. Nothing the contract keeps is ever unlinked
  before another name holds it.
- When the engine runs on this host and the data directory is a plain local volume or a
  bind mount this process can reach (checked: the engine's and this host's view of the
  directory agree), files are read, staged and swapped directly at its host path
  instead (host_files.py, as a local target's): no byte through the engine. `describe` says which way.
- `stop` sets the restart policy to "no" first (and writes the original to
  `.redis-dr/restart-policy` so that a later run can put it back); `start` puts it back.

The `docker` package is imported on first use: the core imports without it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import fnmatch
import json
import os
import posixpath
import re
import shlex
import stat as stat_module
import tarfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import IO, Any
from urllib.parse import quote

import redis

from redis_dr.errors import (
    AccessDeniedError,
    ConfigError,
    NotFoundError,
    PermanentError,
    RedisDRError,
    ServerFailureError,
    StorageFullError,
    TransientError,
)
from redis_dr.platforms import docker_tar
from redis_dr.platforms.base import (
    WORK_DIR,
    DataLayout,
    FileInfo,
    Platform,
    ServerState,
    Swap,
    aside_dir,
    check_name,
    check_tag,
    staging_dir,
)
from redis_dr.platforms.docker_tar import Entry
from redis_dr.platforms.host_files import CHUNK_SIZE, HostDataDir, SymlinkOnTheWay, raise_first
from redis_dr.redis.conf import RedisConfig, parse_config
from redis_dr.redis.connection import PASSWORD_ENV, RedisEndpoint, open_client
from redis_dr.redis.server_log import exit_reason

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
_COMPOSE_ONEOFF = "com.docker.compose.oneoff"
#: Where `stop` keeps the restart policy it replaced, relative to the data directory.
POLICY_FILE = f"{WORK_DIR}/restart-policy"
_DEFAULT_HOST = "unix:///var/run/docker.sock"
#: Container states in which the server process runs; "restarting" is the engine's wait
#: between two runs of a crashing server (the process does not run, but will again).
_UP = ("running", "paused")
_ACTIVE = (*_UP, "restarting")
_POLL = 0.05  # seconds between two looks at the container's state
_MAX_SMALL_FILE = 4 * 1024 * 1024  # config files, /etc/passwd
_MAX_SYMLINKS = 8
_SERVER_BINARIES = ("redis-server", "redis-stack-server")


def _docker() -> ModuleType:
    """The Docker SDK, imported on first use."""
    try:
        import docker
    except ImportError:  # pragma: no cover - it is a dependency
        raise ConfigError("Docker targets need the 'docker' Python package: pip install docker") from None
    module: ModuleType = docker
    return module


@contextlib.contextmanager
def engine_errors(
    doing: str, *, container: str = "", not_found: Callable[[Exception], RedisDRError | None] | None = None
) -> Iterator[None]:
    """Docker SDK and engine errors raised in the block as one-line RedisDRErrors, naming `container`
    (if given) in the engine's refusals; `not_found` words a 404 its own way (None: the engine's words)."""
    docker = _docker()
    import requests

    try:
        yield
    except RedisDRError:
        raise
    except docker.errors.APIError as exc:
        worded = not_found(exc) if not_found is not None and isinstance(exc, docker.errors.NotFound) else None
        raise (worded or _api_error(exc, f"{doing} ({container})" if container else doing)) from None
    except tarfile.TarError as exc:
        named = f" (container {container})" if container else ""
        raise TransientError(
            f"{doing}: the archive from the Docker engine broke off ({exc}){named}"
        ) from None
    except (requests.exceptions.RequestException, docker.errors.DockerException, OSError) as exc:
        raise _unreachable(exc, doing) from None


def engine_host() -> str:
    """The engine redis-dr talks to, for messages."""
    return os.environ.get("DOCKER_HOST") or _DEFAULT_HOST


class DockerPlatform(Platform):
    """A Redis server in a Docker container (see the module docstring).

    `owner` (uid, gid) overrides the owner placed files get (a setting, e.g. 1001:1001
    for Bitnami); `config_path` names the server's config file inside the container when
    its command does not (e.g. a start script). `client` is a `docker.DockerClient`
    (default: from the environment, DOCKER_HOST and friends). `direct=False`: always
    through the archive API, even where the data directory is reachable on this host.
    """

    def __init__(
        self,
        container: str,
        *,
        client: Any = None,
        owner: tuple[int, int] | None = None,
        config_path: str | None = None,
        target: str | None = None,
        direct: bool = True,
    ) -> None:
        self.container = container
        self.target = target or f"docker://{container}"
        self._client = client
        self._owner = owner
        self._config_path = config_path
        self._held_policy: dict[str, Any] | None = None
        self._data_dir: str | None = None
        self._direct = direct
        self._host: HostDataDir | None = None
        self._way: str | None = None  # how files are reached, once decided

    @classmethod
    def for_container(
        cls, name: str, *, owner: tuple[int, int] | None = None, client: Any = None
    ) -> DockerPlatform:
        """`docker://NAME`: the container of that name or id."""
        return cls(name, owner=owner, client=client)

    @classmethod
    def for_compose(
        cls, project: str, service: str, *, owner: tuple[int, int] | None = None, client: Any = None
    ) -> DockerPlatform:
        """`compose://PROJECT/SERVICE`: the one container with those compose labels."""
        platform = cls("", owner=owner, client=client, target=f"compose://{project}/{service}")
        labels = [f"{COMPOSE_PROJECT}={project}", f"{COMPOSE_SERVICE}={service}"]
        with platform._engine("looking up the compose service"):
            found = platform._docker_client().containers.list(all=True, filters={"label": labels})
        found = [c for c in found if (c.labels or {}).get(_COMPOSE_ONEOFF, "False") != "True"]
        if not found:
            raise NotFoundError(
                f"no container of compose service {service!r} in project {project!r} on the Docker "
                f"engine at {engine_host()}: check 'docker compose -p {project} ps -a'"
            )
        if len(found) > 1:
            names = ", ".join(sorted(c.name for c in found))
            raise ConfigError(
                f"compose service {service!r} in project {project!r} has {len(found)} containers "
                f"({names}): name one with docker://CONTAINER"
            )
        platform.container = found[0].name
        return platform

    # --- what it is ------------------------------------------------------------------------

    def describe(self) -> str:
        """One line: the container, its image and the engine."""
        attrs = self._inspect()
        image = attrs.get("Config", {}).get("Image") or attrs.get("Image", "?")
        self._files_on_host()
        return f"Docker container {self.container} (image {image}) on {engine_host()}; files {self._way}"

    def endpoint(self) -> RedisEndpoint | None:
        """With host networking: the config's port on loopback (or its first bind address), with
        `requirepass` (else REDIS_PASSWORD); None otherwise (the container's network is not ours)."""
        attrs = self._inspect()
        if attrs.get("HostConfig", {}).get("NetworkMode") != "host":
            return None
        config, _ = self._config(attrs)
        host = config.connect_host()
        if not config.port or host is None:
            return None
        password = config.requirepass or os.environ.get(PASSWORD_ENV) or None
        return RedisEndpoint("redis", host=host, port=config.port, password=password)

    def identity(self) -> str:
        """`docker://<full id>`: one name for the container however the target named it."""
        return f"docker://{self._inspect()['Id']}"

    def layout(self) -> DataLayout:
        """From the container's command and the config file it names (read out of the container)."""
        config, workdir = self._config(self._inspect())
        layout = config.layout(workdir)
        self._data_dir = layout.dir
        return layout

    def owner(self) -> tuple[int, int]:
        """The setting; else the container's user (a name looked up in its /etc/passwd);
        else (no user, or root) the owner of the data directory."""
        if self._owner is not None:
            return self._owner
        user = (self._inspect().get("Config", {}).get("User") or "").strip()
        if user:
            uid, gid = self._resolve_user(user)
            if uid != 0:
                return uid, gid
        entry = self._entry(self._dir())
        if entry is None:
            raise NotFoundError(
                f"the data directory {self._dir()} does not exist in container {self.container}"
            )
        return entry.uid, entry.gid

    def free_bytes(self) -> int | None:
        """statvfs of the data directory's mount source, when the engine runs on this host and
        that source is what the container sees: None for a remote engine, a volume plugin, or
        a volume the engine mounts only while in use (driver options, e.g. tmpfs or NFS) of a
        container that is not running."""
        host = self._files_on_host()
        if host is not None:
            fs = os.statvfs(host.path)
            return fs.f_bavail * fs.f_frsize
        attrs = self._inspect()
        if not self._engine_is_here():
            return None  # a remote engine: its paths mean nothing here
        mount = self._data_mount(attrs)
        if mount is None:
            source = (attrs.get("GraphDriver", {}).get("Data") or {}).get("UpperDir", "")
        elif mount.get("Type") == "volume" and not self._volume_is_its_mountpoint(mount, attrs):
            return None
        else:
            source = mount.get("Source", "")
        if not source:
            return None
        try:
            fs = os.statvfs(source)
        except OSError:
            return None
        return fs.f_bavail * fs.f_frsize

    def _engine_is_here(self) -> bool:
        """Whether the engine is reached through a unix socket (then it runs on this host)."""
        return str(getattr(self._docker_client().api, "base_url", "")).startswith("http+docker://")

    def _data_mount(self, attrs: dict[str, Any]) -> dict[str, Any] | None:
        """The container's mount that holds the data directory (the innermost), or None."""
        directory = self._dir()
        mount: dict[str, Any] | None = None
        for candidate in attrs.get("Mounts") or []:
            destination = str(candidate.get("Destination", ""))
            covers = directory == destination or directory.startswith(destination.rstrip("/") + "/")
            if covers and (mount is None or len(destination) > len(mount["Destination"])):
                mount = candidate
        return mount

    def _volume_is_its_mountpoint(self, mount: dict[str, Any], attrs: dict[str, Any]) -> bool:
        """Whether the volume's files are at its Mountpoint now (a plain local volume is)."""
        if mount.get("Driver", "local") != "local":
            return False
        with self._engine("inspecting the data volume"):
            options = self._docker_client().volumes.get(mount["Name"]).attrs.get("Options") or {}
        return not options or attrs.get("State", {}).get("Status") in _UP

    def server_binary_version(self) -> str | None:
        """None: telling it would mean running the binary in the container (INFO says)."""
        return None

    # --- lifecycle -------------------------------------------------------------------------

    def state(self) -> ServerState:
        """RUNNING while the container runs (or is paused); STOPPED when exited, or between two
        runs of a restart policy (`restarting`); ABSENT without the container."""
        try:
            status = self._inspect().get("State", {}).get("Status", "")
        except NotFoundError:
            return ServerState.ABSENT
        return ServerState.RUNNING if status in _UP else ServerState.STOPPED

    def stop(self, timeout: float) -> None:
        """Restart policy to "no" (the original kept), SHUTDOWN NOSAVE, wait for the exit;
        `docker stop` when the server cannot be told or does not go. Stopped: no-op; but a
        container the engine is restarting (a crash loop) is stopped like a running one."""
        attrs = self._inspect()
        status = attrs.get("State", {}).get("Status", "")
        if status not in _ACTIVE:
            return
        deadline = time.monotonic() + timeout
        self._hold_restart_policy(attrs)
        if status == "running" and self._shutdown_nosave(timeout) and self._wait_exit(deadline):
            return
        with self._engine("stopping the container"):
            self._get().stop(timeout=max(1, int(deadline - time.monotonic())))
        if not self._wait_exit(time.monotonic() + 30):
            raise ServerFailureError(
                f"container {self.container} did not stop (docker stop): see 'docker ps'"
            )

    def start(self, timeout: float) -> None:
        """Put back the restart policy `stop` replaced, then start the container (restart it
        when the engine is between two runs of a crash loop, so that it runs now)."""
        policy = self._held_policy or self._saved_policy()
        with self._engine("starting the container"):
            container = self._get()
            if policy is not None:
                container.update(restart_policy=policy)
                self._held_policy = None
                self._forget_saved_policy()
            container.reload()
            if container.status in _UP:
                return
            try:
                if container.status == "restarting":
                    container.restart(timeout=max(1, int(timeout)))
                else:
                    container.start()
            except _docker().errors.APIError as exc:
                raise ServerFailureError(
                    f"container {self.container} did not start: {_explanation(exc)}"
                ) from None

    def kill(self) -> None:
        """`docker kill` (SIGKILL); the engine does not restart a container killed through it."""
        with self._engine("killing the container"):
            container = self._get()
            if container.status not in _ACTIVE:
                return
            with contextlib.suppress(_docker().errors.APIError):
                container.kill()
        self._wait_exit(time.monotonic() + 30)

    def exit_reason(self) -> str | None:
        """The warnings of the server's last run in the container's log; None while it runs."""
        with self._engine("reading the container's log"):
            container = self._get()
            if container.status in _UP:
                return None
            text = container.logs(tail=200).decode("utf-8", "replace")
        return exit_reason(text)

    # --- files in the data directory -----------------------------------------------------

    def stat(self, name: str) -> FileInfo | None:
        """The entry `name` (a symlink as itself), or None."""
        host = self._files_on_host()
        if host is not None:
            return host.stat(name)
        entry = self._entry(self._path(name))
        return None if entry is None else _file_info(name, entry)

    def list_dir(self, name: str) -> list[FileInfo]:
        """The entries of directory `name` (`""`: the data directory), sorted by name.

        The archive API has no listing: the directory's archive is read through, file
        contents included (they are skipped, not kept)."""
        relative = check_name(name) if name else ""
        host = self._files_on_host()
        if host is not None:
            return host.list_dir(relative)
        tree = self._tree(relative)
        if tree is None:
            raise NotFoundError(
                f"{self._path(name) if name else self._dir()} does not exist in container {self.container}"
            )
        if not tree[0].is_dir:
            raise ConfigError(f"{name} in container {self.container} is not a directory")
        prefix = f"{relative}/" if relative else ""
        children = [e for e in tree[1:] if "/" not in e.name[len(prefix) :]]
        return sorted((_file_info(e.name, e) for e in children), key=lambda info: info.name)

    def read_file(self, name: str) -> Iterator[bytes]:
        """Open now (NotFoundError at once), then stream `name` (symlinks followed). The engine
        archives a file with the size it has when it reaches it, and sends exactly that many
        bytes even while it grows. The container is busy for the engine until the stream ends
        or is closed. Directly on the host unless the name passes through a symlink (which
        only the container resolves)."""
        host = self._files_on_host()
        if host is not None:
            with contextlib.suppress(SymlinkOnTheWay):
                return host.read_file(name)
        return self._file_chunks(*self._open_file(self._path(name), CHUNK_SIZE))

    def stage_file(self, tag: str, name: str, chunks: Iterable[bytes], size: int) -> None:
        """Stream one archive into `.redis-dr/incoming-<tag>-<random>/name` (directories 0700,
        the file 0600, all owned by `owner()`; memory stays constant whatever the size), then
        link it to its staged name and drop the incoming directory, in a second archive. A
        failed upload never leaves a partial file under the staged name: the engine may still
        be writing it after the client has given up. Directly on the host: as a local
        target stages (a `.partial` file, fsync, rename)."""
        host = self._files_on_host()
        if host is not None:
            host.stage_file(tag, name, chunks, size)
            return
        staged = f"{staging_dir(tag)}/{check_name(name)}"
        incoming = f"{WORK_DIR}/incoming-{check_tag(tag)}-{uuid.uuid4().hex[:12]}"
        uid, gid = self.owner()
        parents = [
            docker_tar.directory(d, mode=0o700, uid=uid, gid=gid) for d in _parents(f"{incoming}/{name}")
        ]
        body = docker_tar.file_archive(
            parents, f"{incoming}/{name}", chunks, size, mode=0o600, uid=uid, gid=gid
        )
        try:
            self._put(body, f"staging {name}")
        except BaseException:
            with contextlib.suppress(RedisDRError):  # best effort: the engine may not be done yet
                self._remove(incoming)
            raise
        like = Entry(f"{incoming}/{name}", tarfile.REGTYPE, size, 0o600, uid, gid, time.time())
        links = [docker_tar.directory(d, mode=0o700, uid=uid, gid=gid) for d in _parents(staged)]
        links.append(docker_tar.hard_link(staged, like.name, like=like))
        self._put_then_remove(links, incoming, f"staging {name}")
        entry = self._entry(self._path(staged))
        if entry is None or entry.size != size:
            raise PermanentError(
                f"staging {name} in container {self.container}: the staged file did not appear"
            )

    def swap_in(self, tag: str, names: list[str]) -> Swap:
        """Each existing name is hard-linked under the aside directory (all of them first, in
        one archive), then replaced by links to its staged files (the staged names are then
        dropped), or removed when nothing was staged for it. Directories are linked file by
        file. Directly on the host: renames. On failure, undone, then raised."""
        swap = Swap(check_tag(tag))
        for name in names:
            check_name(name)
        if self.state() is ServerState.RUNNING:
            raise PermanentError(f"{self.describe()} still runs: stop it before swapping files in")
        host = self._files_on_host()
        if host is not None:
            return host.swap_in(tag, names)
        live = {name: self._tree(name) for name in names}
        staged = {name: self._tree(f"{staging_dir(tag)}/{name}") for name in names}
        for name in names:
            if live[name] is not None and self._entry(self._path(f"{aside_dir(tag)}/{name}")) is not None:
                raise PermanentError(
                    f"{aside_dir(tag)}/{name} already exists in container {self.container}: "
                    f"an earlier restore tagged {tag} was not undone"
                )
        uid, gid = self.owner()
        headers: list[bytes] = []
        for name in names:
            tree = live[name]
            if tree is not None:
                target = f"{aside_dir(tag)}/{name}"
                headers += [docker_tar.directory(d, mode=0o700, uid=uid, gid=gid) for d in _parents(target)]
                headers += _mirror(tree, name, target)
        if headers:
            self._put(docker_tar.archive(*headers), "moving the current files aside")
        swap.moved_aside = [name for name in names if live[name] is not None]
        try:
            for name in names:
                tree = staged[name]
                if tree is not None:
                    swap.placed.append(name)
                    self._place(name, tree, f"{staging_dir(tag)}/{name}", replaces=live[name] is not None)
                    self._remove(f"{staging_dir(tag)}/{name}")  # moved: its files have their new name
                elif live[name] is not None:
                    self._remove(name)
        except BaseException:
            self.swap_back(swap)
            raise
        return swap

    def swap_back(self, swap: Swap) -> None:
        """The placed names are linked again under staging (unless still there); the names kept
        aside are linked back into place and the others removed; the aside names are then
        dropped. Tries every name, raises the first error."""
        host = self._files_on_host()
        if host is not None:
            host.swap_back(swap)
            return
        failures: list[BaseException] = []
        staging, aside = staging_dir(swap.tag), aside_dir(swap.tag)
        for name in reversed(swap.placed):
            try:
                tree = self._tree(name)
                if tree is not None and self._entry(self._path(f"{staging}/{name}")) is None:
                    uid, gid = self.owner()
                    parents = [
                        docker_tar.directory(d, mode=0o700, uid=uid, gid=gid)
                        for d in _parents(f"{staging}/{name}")
                    ]
                    self._put(
                        docker_tar.archive(*parents, *_mirror(tree, name, f"{staging}/{name}")),
                        "staging back",
                    )
            except Exception as exc:
                failures.append(exc)
        restored: list[str] = []
        for name in reversed([*swap.placed, *(n for n in swap.moved_aside if n not in swap.placed)]):
            try:
                if name in swap.moved_aside:
                    tree = self._tree(f"{aside}/{name}")
                    if tree is None:
                        raise PermanentError(
                            f"{aside}/{name} is missing in container {self.container}: cannot put {name} back"
                        )
                    self._place(
                        name, tree, f"{aside}/{name}", replaces=self._entry(self._path(name)) is not None
                    )
                    restored.append(name)
                elif self._entry(self._path(name)) is not None:
                    self._remove(name)
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise_first(failures, "names not put back")
        for name in restored:
            self._remove(f"{aside}/{name}")
        self._remove_if_empty(aside)

    def discard_staging(self, tag: str) -> None:
        """Remove `.redis-dr/staging-<tag>` (names only: placed files keep their other name),
        and `.redis-dr` when that leaves it empty."""
        host = self._files_on_host()
        if host is not None:
            host.discard_staging(tag)
            return
        staging = staging_dir(tag)
        if self._entry(self._path(staging)) is not None:
            self._remove(staging)
        self._remove_if_empty(WORK_DIR)

    def work_entries(self) -> list[str] | None:
        """Directly on the host: the directories under WORK_DIR; through the engine: None (it
        would read the whole work directory, staged files included)."""
        host = self._files_on_host()
        return None if host is None else host.work_entries()

    # --- the data directory on this host ---------------------------------------------------

    def _files_on_host(self) -> HostDataDir | None:
        """The data directory on this host when it is reachable there (decided once)."""
        if self._way is None:
            self._host, self._way = self._reach_host_dir()
        return self._host

    def _reach_host_dir(self) -> tuple[HostDataDir | None, str]:
        """The data directory on this host and how it is reached, or None and why not."""
        archive = "through the engine's archive API"
        if not self._direct:
            return None, f"{archive} (direct access turned off)"
        if not self._engine_is_here():
            return None, f"{archive} (the engine at {engine_host()} is not on this host)"
        attrs = self._inspect()
        directory = self._dir()
        mount = self._data_mount(attrs)
        if mount is None:
            return None, f"{archive} ({directory} is not a volume or bind mount)"
        kind, name = mount.get("Type"), mount.get("Name") or mount.get("Source")
        if kind == "volume":
            if mount.get("Driver", "local") != "local":
                return None, f"{archive} (volume {name} has driver {mount.get('Driver')})"
            with self._engine("inspecting the data volume"):
                options = self._docker_client().volumes.get(mount["Name"]).attrs.get("Options") or {}
            if options:
                return None, f"{archive} (volume {name} has driver options: mounted only while in use)"
        elif kind != "bind":
            return None, f"{archive} ({directory} is a {kind} mount)"
        source = str(mount.get("Source", ""))
        relative = posixpath.relpath(directory, str(mount["Destination"]))
        path = posixpath.normpath(posixpath.join(source, relative))
        why_not = self._host_view_differs(path, directory)
        if why_not:
            return None, f"{archive} ({why_not})"
        uid, gid = self.owner()
        if os.geteuid() not in (0, uid) or not os.access(path, os.W_OK | os.X_OK):
            return None, f"{archive} (redis-dr, uid {os.geteuid()}, may not write {path})"
        host = HostDataDir(path, lambda: (uid, gid), follow_symlinks=False)
        return host, f"directly at {path} on this host ({kind} {name})"

    def _host_view_differs(self, path: str, directory: str) -> str | None:
        """Why `path` here is not the container's `directory` (None: it is): a real directory,
        no symlink on the way, the same mtime to the nanosecond, mode and owner as the engine
        sees (another mount namespace or a user-namespace remap would differ)."""
        try:
            real = os.path.realpath(path)
            info = os.lstat(path)
        except OSError as exc:
            return f"{path} is not reachable here: {exc.strerror}"
        if real != path or not stat_module.S_ISDIR(info.st_mode):
            return f"{path} is not a plain directory here"
        for _ in range(3):  # the server may be writing in it: look again
            seen = self._path_stat(directory)
            if seen is None:
                return f"the engine does not find {directory}"
            with contextlib.suppress(OSError):
                info = os.lstat(path)
            mtime_ns, mode = seen
            if mtime_ns == info.st_mtime_ns and mode == stat_module.S_IMODE(info.st_mode):
                break
        else:
            return f"{path} here is not what the container sees at {directory}"
        entry = self._entry(directory)
        if entry is None or (entry.uid, entry.gid) != (info.st_uid, info.st_gid):
            return f"the container sees other owners than this host at {path} (a user namespace?)"
        return None

    def _path_stat(self, path: str) -> tuple[int, int] | None:
        """The engine's stat of `path` in the container (mtime in ns, permission bits) from
        the `X-Docker-Container-Path-Stat` header of a HEAD: no content is sent."""
        api = self._docker_client().api
        url = f"{api.base_url}/v{api.api_version}/containers/{quote(self.container, safe='')}/archive"
        with self._engine(f"looking at {path}"):
            response = api.head(url, params={"path": path}, timeout=api.timeout)
        with contextlib.closing(response):
            if response.status_code == 404:
                return None
            if response.status_code >= 400:
                raise _api_error_text(response.status_code, response.reason or "", f"looking at {path}")
            encoded = response.headers.get("X-Docker-Container-Path-Stat", "")
        seen = json.loads(base64.b64decode(encoded))
        return _go_time_ns(str(seen["mtime"])), int(seen["mode"]) & 0o777

    # --- the engine ----------------------------------------------------------------------

    def _docker_client(self) -> Any:
        if self._client is None:
            with self._engine("connecting"):
                self._client = _docker().from_env()
        return self._client

    def _engine(self, doing: str) -> contextlib.AbstractContextManager[None]:
        """Turn SDK and engine errors into one-line RedisDRErrors naming the container."""
        return engine_errors(
            doing, container=self.container, not_found=lambda exc: self._not_found(_explanation(exc))
        )

    def _not_found(self, explanation: str) -> NotFoundError:
        if not explanation or "no such container" in explanation.lower():
            return NotFoundError(
                f"container {self.container!r} not found on the Docker engine at {engine_host()}: "
                "check the name with 'docker ps -a'"
            )
        return NotFoundError(f"{explanation} (container {self.container})")

    def _get(self) -> Any:
        return self._docker_client().containers.get(self.container)

    def _inspect(self) -> dict[str, Any]:
        with self._engine("inspecting the container"):
            attrs: dict[str, Any] = self._get().attrs
        return attrs

    def _status(self) -> str:
        try:
            return str(self._inspect().get("State", {}).get("Status", ""))
        except NotFoundError:
            return "absent"

    def _wait_exit(self, deadline: float) -> bool:
        """Wait until the container no longer runs; False at the deadline."""
        while self._status() in _ACTIVE:
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL)
        return True

    # --- restart policy ------------------------------------------------------------------

    def _hold_restart_policy(self, attrs: dict[str, Any]) -> None:
        """Set the restart policy to "no", keeping the original (here and in POLICY_FILE)."""
        policy = dict(attrs.get("HostConfig", {}).get("RestartPolicy") or {})
        if policy.get("Name", "") in ("", "no"):
            return
        self._held_policy = {"Name": policy["Name"], "MaximumRetryCount": policy.get("MaximumRetryCount", 0)}
        with contextlib.suppress(RedisDRError):  # best effort: this process remembers it anyway
            data = json.dumps(self._held_policy).encode()
            uid, gid = self.owner()
            body = docker_tar.file_archive(
                [docker_tar.directory(WORK_DIR, mode=0o700, uid=uid, gid=gid)],
                POLICY_FILE, [data], len(data), mode=0o600, uid=uid, gid=gid,
            )  # fmt: skip
            self._put(body, "saving the restart policy")
        with self._engine("setting the restart policy to 'no'"):
            self._get().update(restart_policy={"Name": "no", "MaximumRetryCount": 0})

    def _saved_policy(self) -> dict[str, Any] | None:
        """The policy an earlier `stop` (maybe of another run) saved, if any."""
        try:
            data = b"".join(self._read_path(self._path(POLICY_FILE), _MAX_SMALL_FILE))
        except RedisDRError:
            return None
        try:
            policy = json.loads(data)
        except ValueError:
            return None
        if not isinstance(policy, dict) or not isinstance(policy.get("Name"), str):
            return None
        return {"Name": policy["Name"], "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}

    def _forget_saved_policy(self) -> None:
        with contextlib.suppress(RedisDRError):
            if self._entry(self._path(POLICY_FILE)) is not None:
                self._remove(POLICY_FILE)

    def _shutdown_nosave(self, timeout: float) -> bool:
        """SHUTDOWN NOSAVE through the server; False when it cannot be told (then docker stop)."""
        try:
            endpoint = self.endpoint()
        except RedisDRError:
            return False
        if endpoint is None:
            return False
        client = open_client(endpoint, socket_timeout=min(timeout, 10.0), connect_timeout=min(timeout, 2.0))
        try:
            client.ping()
        except redis.BusyLoadingError:
            # Loading: it refuses SHUTDOWN, and `docker stop`'s SIGTERM is acted on only after
            # the load (then it saves). What it holds came from disk: killing it loses nothing.
            client.close()
            self.kill()
            return True
        except redis.RedisError:
            client.close()
            return False
        try:
            client.execute_command("SHUTDOWN", "NOSAVE")  # type: ignore[no-untyped-call]
        except (redis.ConnectionError, redis.TimeoutError):
            return True  # the server closed the connection as it went down
        except redis.RedisError:
            return False
        finally:
            client.close()
        return True

    # --- config, user -------------------------------------------------------------------

    def _config(self, attrs: dict[str, Any]) -> tuple[RedisConfig, str]:
        """The server's config (file and arguments) and its start directory."""
        config_spec = attrs.get("Config", {})
        argv = [*(config_spec.get("Entrypoint") or []), *(config_spec.get("Cmd") or [])]
        workdir = config_spec.get("WorkingDir") or "/"
        args = server_args(argv)
        if args is None and self._config_path is None:
            raise ConfigError(
                f"container {self.container}: its command {shlex.join(argv)!r} does not show how "
                "redis-server starts: run it as 'redis-server /path/redis.conf', or name the config "
                "file in the environment file"
            )
        args = args or []
        config_file = self._config_path
        if args and not args[0].startswith("-"):
            config_file, args = args[0], args[1:]
        config = RedisConfig()
        if config_file:
            path = posixpath.join(workdir, config_file)
            parse_config(path, self._read_text, glob_paths=self._glob, cwd=workdir, into=config)
        config.apply_args(args)
        return config, workdir

    def _read_text(self, path: str) -> str:
        data = b"".join(self._read_path(path, _MAX_SMALL_FILE))
        return data.decode("utf-8", "surrogateescape")

    def _glob(self, pattern: str) -> list[str]:
        """`include` wildcards, expanded in the container (in the last path part only)."""
        directory, base = posixpath.split(pattern)
        if any(c in directory for c in "*?["):
            raise ConfigError(
                f"include {pattern!r} in container {self.container}: wildcards only in the file name"
            )
        tree = self._tree_at(directory)
        if tree is None:
            return []
        return [
            posixpath.join(directory, posixpath.basename(e.name))
            for e in tree[1:]
            if "/" not in e.name.partition("/")[2] and fnmatch.fnmatchcase(posixpath.basename(e.name), base)
        ]

    def _resolve_user(self, user: str) -> tuple[int, int]:
        """uid/gid of a container's `User` (`name`, `uid`, `name:group`, `uid:gid`)."""
        name, _, group = user.partition(":")
        passwd: list[list[str]] | None = None

        def table(path: str) -> list[list[str]]:
            try:
                return [
                    line.split(":") for line in self._read_text(path).splitlines() if line.count(":") >= 2
                ]
            except NotFoundError:
                return []

        if name.isdigit():
            uid, gid = int(name), None
        else:
            passwd = table("/etc/passwd")
            row = next((r for r in passwd if r[0] == name and len(r) >= 4), None)
            if row is None:
                raise ConfigError(
                    f"user {name!r} of container {self.container} is not in its /etc/passwd: "
                    "give the owner (uid:gid) in the environment file"
                )
            uid, gid = int(row[2]), int(row[3])
        if group:
            if group.isdigit():
                return uid, int(group)
            row = next((r for r in table("/etc/group") if r[0] == group), None)
            if row is None:
                raise ConfigError(f"group {group!r} of container {self.container} is not in its /etc/group")
            return uid, int(row[2])
        if gid is None:
            passwd = passwd if passwd is not None else table("/etc/passwd")
            row = next((r for r in passwd if len(r) >= 4 and r[2] == str(uid)), None)
            gid = int(row[3]) if row else 0  # as the engine does for a uid it does not know
        return uid, gid

    # --- paths and archives ------------------------------------------------------------

    def _dir(self) -> str:
        if self._data_dir is None:
            self.layout()
        assert self._data_dir is not None
        return self._data_dir

    def _path(self, name: str) -> str:
        return posixpath.join(self._dir(), check_name(name))

    @contextlib.contextmanager
    def _archive(self, path: str) -> Iterator[IO[bytes] | None]:
        """The engine's archive of `path` as a raw stream (None: no such path). Closing it
        early (as the `with` does) stops the engine's side and releases the container."""
        client = self._docker_client()
        api = client.api
        with self._engine(f"reading {path}"):
            url = f"{api.base_url}/v{api.api_version}/containers/{quote(self.container, safe='')}/archive"
            # identity: the engine gzips the archive for a client that accepts it
            headers = {"Accept-Encoding": "identity"}
            response = api.get(url, params={"path": path}, headers=headers, stream=True, timeout=api.timeout)
        try:
            if response.status_code == 404:
                message = _message(response)
                if "no such container" in message.lower():
                    raise self._not_found(message)
                yield None
                return
            if response.status_code >= 400:
                raise _api_error_text(
                    response.status_code, _message(response), f"reading {path} ({self.container})"
                )
            yield response.raw
        finally:
            response.close()

    def _entry(self, path: str) -> Entry | None:
        """The archive header of `path` (lstat-like), or None; reads no file content."""
        with self._archive(path) as stream:
            if stream is None:
                return None
            with self._engine(f"reading {path}"):
                for entry in docker_tar.read_entries(stream):
                    return entry
        return None

    def _tree_at(self, path: str) -> list[Entry] | None:
        """`path` and everything under it, names as in the archive (`base/...`). A file is
        only its header (its content is not read); a directory's archive is read through."""
        first = self._entry(path)
        if first is None or not first.is_dir:
            return None if first is None else [first]
        with self._archive(path) as stream:
            if stream is None:
                return None
            with self._engine(f"reading {path}"):
                entries: list[Entry] = []
                sizes: dict[str, int] = {}
                for entry in docker_tar.read_entries(stream):
                    if entry.kind == tarfile.LNKTYPE:  # a second name of an inode seen before
                        entry = Entry(**{**entry.__dict__, "size": sizes.get(entry.linkname, 0)})
                    sizes[entry.name] = entry.size
                    entries.append(entry)
                return entries

    def _tree(self, name: str) -> list[Entry] | None:
        """Like `_tree_at` for a data-dir relative name (`""`: the data dir), names relative to it."""
        path = self._path(name) if name else self._dir()
        tree = self._tree_at(path)
        if tree is None:
            return None
        parent = posixpath.dirname(name)
        if not name:
            base = posixpath.basename(path)
            return [_renamed(e, e.name[len(base) + 1 :] if e.name != base else "") for e in tree]
        return [_renamed(e, posixpath.join(parent, e.name)) for e in tree]

    def _read_path(self, path: str, limit: int) -> Iterator[bytes]:
        """Read a small file (symlinks followed); ConfigError when larger than `limit`."""
        opened = self._open_file(path, 64 * 1024)
        if opened[1].size > limit:
            opened[0].close()
            raise ConfigError(f"{path} in container {self.container} is larger than {limit} bytes")
        return self._file_chunks(*opened)

    def _open_file(
        self, path: str, bufsize: int, depth: int = 0
    ) -> tuple[contextlib.ExitStack, Entry, IO[bytes]]:
        """Open the archive of a regular file (symlinks followed in the container): the stack
        to close, the file's entry, and its content as a stream."""
        stack = contextlib.ExitStack()
        try:
            stream = stack.enter_context(self._archive(path))
            if stream is None:
                raise NotFoundError(f"{path} does not exist in container {self.container}")
            with self._engine(f"reading {path}"):
                tar = docker_tar.open_stream(stream, bufsize)
                stack.callback(tar.close)
                info = tar.next()
                if info is None:
                    raise NotFoundError(f"{path} does not exist in container {self.container}")
                entry = docker_tar.entry_of(info)
                if entry.kind == tarfile.SYMTYPE:
                    if depth >= _MAX_SYMLINKS:
                        raise ConfigError(
                            f"{path} in container {self.container}: too many levels of symlinks"
                        )
                    stack.close()
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(path), entry.linkname))
                    return self._open_file(target, bufsize, depth + 1)
                content = tar.extractfile(info) if entry.kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else None
            if content is None:
                raise ConfigError(f"{path} in container {self.container} is not a regular file")
        except BaseException:
            stack.close()
            raise
        return stack, entry, content

    def _file_chunks(self, stack: contextlib.ExitStack, entry: Entry, content: IO[bytes]) -> Iterator[bytes]:
        with stack:
            left = entry.size
            while left > 0:
                with self._engine(f"reading {entry.name}"):
                    chunk = content.read(min(CHUNK_SIZE, left))
                if not chunk:
                    raise TransientError(
                        f"the Docker engine ended {entry.name} of container {self.container} early "
                        f"({entry.size - left} of {entry.size} bytes)"
                    )
                left -= len(chunk)
                yield chunk

    def _put(self, body: bytes | Iterator[bytes], doing: str) -> None:
        """Extract an archive into the data directory."""
        with self._engine(doing):
            self._get().put_archive(self._dir(), body)

    def _place(self, name: str, tree: list[Entry], source: str, *, replaces: bool) -> None:
        """Make `name` hold the files of `tree` (rooted at `source`) by hard links.

        A directory replacing anything is first replaced by an empty file (whose entry
        removes the old tree: its files must already have another name)."""
        headers: list[bytes] = []
        if "/" in name:
            uid, gid = self.owner()
            for parent in _parents(name):
                if self._entry(self._path(parent)) is None:
                    headers.append(docker_tar.directory(parent, mode=0o700, uid=uid, gid=gid))
        if tree[0].is_dir and replaces:
            headers.append(docker_tar.empty_file(name, uid=tree[0].uid, gid=tree[0].gid))
        headers += _mirror(tree, source, name)
        self._put(docker_tar.archive(*headers), f"placing {name}")

    def _remove(self, name: str) -> None:
        """Remove `name` (and what is under it) with an entry that replaces it and fails."""
        self._put_then_remove([], name, f"removing {name}")

    def _put_then_remove(self, headers: list[bytes], name: str, doing: str) -> None:
        """One archive: `headers` (which must all succeed), then the removal of `name` (whose
        entry fails once the name is gone: that failure is expected, and checked by a stat)."""
        path = self._path(name)
        docker = _docker()
        refusal = ""
        with self._engine(doing):
            try:
                self._get().put_archive(self._dir(), docker_tar.archive(*headers, docker_tar.removal(name)))
            except docker.errors.NotFound:
                raise
            except docker.errors.APIError as exc:
                refusal = _explanation(exc)  # expected: the entry fails once the name is gone
        if self._entry(path) is not None:
            raise PermanentError(
                f"could not remove {name} from the data directory of container {self.container}: "
                f"{refusal or 'the engine gave no reason'}"
            )

    def _remove_if_empty(self, name: str) -> None:
        """Remove our directory `name` when nothing is in it (reads two headers at most)."""
        path = self._path(name)
        with self._archive(path) as stream:
            if stream is None:
                return
            with self._engine(f"reading {path}"):
                headers = docker_tar.read_entries(stream)
                first = next(headers, None)
                if first is None or not first.is_dir or next(headers, None) is not None:
                    return
        self._remove(name)


# --- module helpers ------------------------------------------------------------------------


def server_args(argv: list[str]) -> list[str] | None:
    """The arguments redis-server gets from a container's entrypoint + command, or None.

    `redis-server ...` anywhere in argv (after a wrapper such as docker-entrypoint.sh or
    tini), inside a `sh -c "..."` string, or the official image's shortcut: its
    docker-entrypoint.sh runs redis-server for a first argument `-...` or `*.conf`.
    """
    for index, arg in enumerate(argv):
        if posixpath.basename(arg) in _SERVER_BINARIES:
            return argv[index + 1 :]
    for arg in argv:
        if " " in arg and any(binary in arg for binary in _SERVER_BINARIES):
            with contextlib.suppress(ValueError):
                words = shlex.split(arg)
                found = server_args(words)
                if found is not None:
                    return [w for w in found if w not in ("&&", ";", "|")]
    entrypoint = len(argv) >= 2 and posixpath.basename(argv[0]) == "docker-entrypoint.sh"
    if entrypoint and (argv[1].startswith("-") or argv[1].endswith(".conf")):
        return argv[1:]
    return None


def _parents(relative: str) -> list[str]:
    """The directories above `relative` inside the data directory, outermost first."""
    parts = relative.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _mirror(tree: list[Entry], source: str, target: str) -> list[bytes]:
    """Entries that make `target` a copy of the tree at `source` by hard links: directories
    with the original owner/mode/times, each other entry a link with its inode's owner."""
    headers = []
    for entry in tree:
        name = target + entry.name[len(source) :]
        if entry.is_dir:
            headers.append(
                docker_tar.directory(name, mode=entry.mode, uid=entry.uid, gid=entry.gid, mtime=entry.mtime)
            )
        else:
            headers.append(docker_tar.hard_link(name, entry.name, like=entry))
    return headers


def _go_time_ns(text: str) -> int:
    """Nanoseconds since the epoch of a Go RFC 3339 time (`2026-11-25T17:30:01.123456789Z`)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        raise PermanentError(f"the Docker engine gave a time redis-dr cannot read: {text!r}")
    zone = "+00:00" if match[3] == "Z" else match[3]
    seconds = int(dt.datetime.fromisoformat(match[1] + zone).timestamp())
    return seconds * 1_000_000_000 + int((match[2] or "").ljust(9, "0"))


def _renamed(entry: Entry, name: str) -> Entry:
    return Entry(**{**entry.__dict__, "name": name})


def _file_info(name: str, entry: Entry) -> FileInfo:
    return FileInfo(
        name=name, size=entry.size, is_dir=entry.is_dir, uid=entry.uid, gid=entry.gid,
        mode=stat_module.S_IMODE(entry.mode),
    )  # fmt: skip


def _message(response: Any) -> str:
    try:
        return str(response.json().get("message", ""))
    except ValueError:
        return str(response.text[:300])


def _explanation(exc: Any) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return " ".join(text.split())[:300]


def _api_error(exc: Any, doing: str) -> RedisDRError:
    status = getattr(getattr(exc, "response", None), "status_code", None) or 500
    return _api_error_text(int(status), _explanation(exc), doing)


def _api_error_text(status: int, message: str, doing: str) -> RedisDRError:
    lowered = message.lower()
    if "no space left" in lowered or "quota" in lowered:
        return StorageFullError(f"{doing}: no space left: {message}")
    if "permission denied" in lowered or "read-only file system" in lowered or status in (401, 403):
        return AccessDeniedError(f"{doing}: the Docker engine refused: {message}")
    if status in (502, 503, 504):
        return TransientError(f"{doing}: the Docker engine is not ready ({status}): {message}")
    return PermanentError(f"{doing}: the Docker engine said: {message}")


def _unreachable(exc: BaseException, doing: str) -> RedisDRError:
    """An engine that cannot be reached: why, with DOCKER_HOST named."""
    text = _chain_text(exc)
    host = engine_host()
    if "permission denied" in text.lower() or _has_errno(exc, errno.EACCES):
        return AccessDeniedError(
            f"permission denied on the Docker engine socket {host} while {doing}: run redis-dr as root or "
            "as a member of the 'docker' group, or point DOCKER_HOST at an engine you may use"
        )
    if _has_errno(exc, errno.ENOENT) or "no such file or directory" in text.lower():
        return ConfigError(
            f"no Docker engine at {host} (DOCKER_HOST) while {doing}: start dockerd, or set DOCKER_HOST"
        )
    return TransientError(
        f"the Docker engine at {host} (DOCKER_HOST) did not answer while {doing}: {text[:200]}"
    )


def _chain_text(exc: BaseException) -> str:
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 8:
        seen.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return " <- ".join(seen)


def _has_errno(exc: BaseException, number: int) -> bool:
    current: BaseException | None = exc
    for _ in range(16):
        if current is None:
            return False
        if isinstance(current, OSError) and current.errno == number:
            return True
        for arg in getattr(current, "args", ()):
            if isinstance(arg, OSError) and arg.errno == number:
                return True
            inner = getattr(arg, "args", ())
            if any(isinstance(a, OSError) and a.errno == number for a in inner if isinstance(inner, tuple)):
                return True
        current = current.__cause__ or current.__context__
    return False
