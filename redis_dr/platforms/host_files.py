"""A data directory's files on this host, reached with plain os calls.

One implementation of the contract's file operations (redis_dr/platforms/base.py) for
a directory this process can open: a local target's data directory, and a Docker
container's when the engine runs here and the directory is a plain local volume or a
bind mount (then no byte moves through the engine). Every rename stays inside the data
directory, so a swap is atomic per name and free; staged files are fsynced, as are the
directories they are renamed in.

Where the directory is a container's, a symlink in it means what it means in the
container (`follow_symlinks=False`): reads do not follow one (SymlinkOnTheWay: the
caller reads such a file its own way) and writes refuse a symlink on the way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat as stat_module
from collections.abc import Callable, Iterable, Iterator
from typing import NoReturn

from redis_dr.errors import (
    AccessDeniedError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    StorageFullError,
    TransientError,
)
from redis_dr.platforms.base import (
    WORK_DIR,
    FileInfo,
    Swap,
    aside_dir,
    check_name,
    check_tag,
    staging_dir,
)

CHUNK_SIZE = 1024 * 1024


class SymlinkOnTheWay(PermanentError):
    """A name in the data directory passes through a symlink: only the container can resolve it."""


class HostDataDir:
    """The data directory at `path` on this host; files and directories it creates get
    `owner()` (uid, gid), asked once per stage or swap (it may refuse: AccessDeniedError).

    `follow_symlinks=False` for a directory whose symlinks resolve elsewhere (a
    container's). The caller checks that the server is stopped before a swap.
    """

    def __init__(self, path: str, owner: Callable[[], tuple[int, int]], *, follow_symlinks: bool) -> None:
        self.path = path
        self.owner = owner
        self.follow_symlinks = follow_symlinks

    # --- reading ---------------------------------------------------------------------------

    def stat(self, name: str) -> FileInfo | None:
        """lstat of `name` (a symlink as itself), or None."""
        path = self._path(name)
        with self._os_errors(path):
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                return None
        return file_info(name, info)

    def list_dir(self, name: str) -> list[FileInfo]:
        """The entries of directory `name` (`""`: the data directory), sorted by name."""
        path = self._path(name) if name else self.path
        with self._os_errors(path):
            try:
                entries = sorted(os.scandir(path), key=lambda entry: entry.name)
            except FileNotFoundError:
                raise NotFoundError(f"{path} does not exist in the data directory") from None
            except NotADirectoryError:
                raise ConfigError(f"{path} is not a directory") from None
            return [
                file_info(f"{name}/{entry.name}" if name else entry.name, entry.stat(follow_symlinks=False))
                for entry in entries
            ]

    def read_file(self, name: str) -> Iterator[bytes]:
        """Open now (NotFoundError at once; SymlinkOnTheWay for a symlink not followed), then
        stream the size the file had at open in 1 MiB chunks."""
        path = self._path(name)
        flags = os.O_RDONLY | os.O_CLOEXEC | (0 if self.follow_symlinks else os.O_NOFOLLOW)
        with self._os_errors(path):
            try:
                fd = os.open(path, flags)
            except FileNotFoundError:
                raise NotFoundError(f"{path} does not exist in the data directory") from None
            except OSError as exc:
                if not self.follow_symlinks and exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
                    raise SymlinkOnTheWay(f"{name} is a symlink") from None
                raise
            size = os.fstat(fd).st_size
        return self._chunks(fd, path, size)

    def _chunks(self, fd: int, path: str, size: int) -> Iterator[bytes]:
        try:
            left = size
            while left > 0:
                with self._os_errors(path):
                    chunk = os.read(fd, min(CHUNK_SIZE, left))
                if not chunk:
                    raise IntegrityError(f"{path} shrank while it was read ({size - left} of {size} bytes)")
                left -= len(chunk)
                yield chunk
        finally:
            os.close(fd)

    def work_entries(self) -> list[str] | None:
        """The directories under WORK_DIR: earlier restores' aside copies and interrupted stagings."""
        try:
            with os.scandir(posixpath.join(self.path, WORK_DIR)) as entries:
                return sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []
        except OSError:
            return None

    # --- writing ---------------------------------------------------------------------------

    def stage_file(self, tag: str, name: str, chunks: Iterable[bytes], size: int) -> None:
        """Write `<staging>/name` through a `.partial` file: owner, mode 0600, fsync, rename."""
        relative = f"{staging_dir(tag)}/{check_name(name)}"
        owner = self.owner()
        self._make_dirs(posixpath.dirname(relative), owner)
        final = self._path(relative)
        partial = final + ".partial"
        with self._os_errors(final):
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with self._os_errors(final):
                _chown_fd(fd, owner)
                os.fchmod(fd, 0o600)
            written = 0
            for chunk in chunks:  # the source's own errors propagate untranslated
                written += len(chunk)
                if written > size:
                    raise IntegrityError(f"staging {name}: more than the {size} bytes announced arrived")
                with self._os_errors(final):
                    write_all(fd, chunk)
            if written != size:
                raise IntegrityError(f"staging {name}: got {written} bytes where {size} were announced")
            with self._os_errors(final):
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        os.close(fd)
        with self._os_errors(final):
            os.rename(partial, final)
            fsync_dir(posixpath.dirname(final))

    def swap_in(self, tag: str, names: list[str]) -> Swap:
        """Renames only: each existing name goes aside, then its staged file (if any) into place.
        On failure part-way, undone, then raised."""
        swap = Swap(check_tag(tag))
        check_swappable(names)
        owner = self.owner()
        try:
            for name in names:
                live, aside = self._path(name), self._path(f"{aside_dir(tag)}/{name}")
                staged = self._path(f"{staging_dir(tag)}/{name}")
                with self._os_errors(live):
                    if os.path.lexists(live):
                        if os.path.lexists(aside):
                            raise PermanentError(
                                f"{aside} already exists: an earlier restore tagged {tag} was not undone"
                            )
                        self._make_dirs(posixpath.dirname(f"{aside_dir(tag)}/{name}"), owner)
                        os.rename(live, aside)
                        swap.moved_aside.append(name)
                    if os.path.lexists(staged):
                        os.rename(staged, live)
                        swap.placed.append(name)
            with self._os_errors(self.path):
                for directory in {posixpath.dirname(self._path(name)) for name in names}:
                    fsync_dir(directory)
        except BaseException:
            self.swap_back(swap)
            raise
        return swap

    def swap_back(self, swap: Swap) -> None:
        """Placed names back to staging, then the names kept aside back into place; the aside
        directory (then empty) is removed. Tries every name, raises the first error."""
        failures: list[BaseException] = []
        for name in reversed(swap.placed):
            try:
                live, staged = self._path(name), self._path(f"{staging_dir(swap.tag)}/{name}")
                with self._os_errors(staged):
                    if os.path.lexists(live):
                        self._make_dirs(posixpath.dirname(f"{staging_dir(swap.tag)}/{name}"), self.owner())
                        os.rename(live, staged)
            except Exception as exc:
                failures.append(exc)
        for name in reversed(swap.moved_aside):
            try:
                live, aside = self._path(name), self._path(f"{aside_dir(swap.tag)}/{name}")
                with self._os_errors(live):
                    os.rename(aside, live)
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise_first(failures, "names not put back")
        remove_empty_tree(self._path(aside_dir(swap.tag)))
        with contextlib.suppress(OSError):
            fsync_dir(self.path)

    def discard_staging(self, tag: str) -> None:
        """Remove `.redis-dr/staging-<tag>` (and `.redis-dr` when that leaves it empty)."""
        path = self._path(staging_dir(tag))
        with self._os_errors(path):
            if os.path.lexists(path):
                if os.path.islink(path):
                    os.unlink(path)
                else:
                    shutil.rmtree(path)
        with contextlib.suppress(OSError):
            os.rmdir(self._path(WORK_DIR))

    # --- helpers ---------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        """The host path of a data-dir name. Not following symlinks: SymlinkOnTheWay when a
        directory above it is one (it would resolve on this host, not in the container)."""
        parts = check_name(name).split("/")
        if self.follow_symlinks:
            return posixpath.join(self.path, *parts)
        path = self.path
        for part in parts[:-1]:
            path = posixpath.join(path, part)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                break
            except OSError as exc:
                raise os_error(exc, path, self.path) from None
            if stat_module.S_ISLNK(mode):
                raise SymlinkOnTheWay(f"{path} is a symlink: it is not followed out of the container")
        return posixpath.join(self.path, *parts)

    def _make_dirs(self, relative: str, owner: tuple[int, int]) -> None:
        """Create each missing directory of `relative` under the data dir: mode 0700, owned."""
        path = self.path
        for part in relative.split("/"):
            path = posixpath.join(path, part)
            with self._os_errors(path):
                try:
                    os.mkdir(path, 0o700)
                except FileExistsError:
                    if not self.follow_symlinks and not stat_module.S_ISDIR(os.lstat(path).st_mode):
                        raise SymlinkOnTheWay(f"{path} is not a directory") from None
                    continue
                os.chmod(path, 0o700)
                info = os.lstat(path)
                if (info.st_uid, info.st_gid) != owner:
                    os.chown(path, *owner)

    @contextlib.contextmanager
    def _os_errors(self, path: str) -> Iterator[None]:
        """OS errors as one-line project errors naming the path and the data directory."""
        try:
            yield
        except OSError as exc:
            raise os_error(exc, path, self.path) from None


# --- helpers for a data directory's files ----------------------------------------------------


def check_swappable(names: list[str]) -> None:
    """Each name is a data-dir name and not redis-dr's own work directory (ConfigError)."""
    for name in names:
        check_name(name)
        if name == WORK_DIR or name.startswith(WORK_DIR + "/"):
            raise ConfigError(f"{name!r} is redis-dr's own directory, not a data file")


def raise_first(failures: list[BaseException], what: str) -> NoReturn:
    """Raise the first of `failures`, its message counting the others ("and 2 more <what>")."""
    first = failures[0]
    if len(failures) > 1:
        raise type(first)(f"{first} (and {len(failures) - 1} more {what})") from first
    raise first


def os_error(exc: OSError, path: str, data_dir: str) -> PermanentError | TransientError:
    """An OSError on `path` as a one-line project error naming the data directory."""
    where = exc.filename or path
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"no space left in the data directory {data_dir} (writing {where})")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return AccessDeniedError(
            f"permission denied on {where}: redis-dr (uid {os.geteuid()}) needs read/write access to "
            f"the data directory {data_dir}"
        )
    if exc.errno == errno.EROFS:
        return AccessDeniedError(f"{where} is on a read-only file system: remount {data_dir} read-write")
    if exc.errno == errno.ENOENT:
        return NotFoundError(f"{where} does not exist")
    if exc.errno in (errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE):
        return TransientError(f"file system temporarily failed on {where}: {exc.strerror}")
    return PermanentError(f"file system error on {where}: {exc.strerror or exc}")


def file_info(name: str, info: os.stat_result) -> FileInfo:
    """The contract's FileInfo of an lstat result."""
    return FileInfo(
        name=name,
        size=info.st_size,
        is_dir=stat_module.S_ISDIR(info.st_mode),
        uid=info.st_uid,
        gid=info.st_gid,
        mode=stat_module.S_IMODE(info.st_mode),
    )


def write_all(fd: int, chunk: bytes) -> None:
    """os.write until all of `chunk` is written."""
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(path: str) -> None:
    """fsync a directory (so that the renames in it survive a crash)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_empty_tree(path: str) -> None:
    """Remove `path` and the empty directories under it; anything holding a file stays."""
    if not os.path.isdir(path) or os.path.islink(path):
        return
    for root, dirs, _files in os.walk(path, topdown=False):
        for directory in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(posixpath.join(root, directory))
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _chown_fd(fd: int, owner: tuple[int, int]) -> None:
    info = os.fstat(fd)
    if (info.st_uid, info.st_gid) != owner:
        os.fchown(fd, *owner)
