"""A Docker container's data directory reached directly on this host's file system.

When the engine runs on this host and the data directory is a plain local volume or
a bind mount, its files are at the volume's Mountpoint (the mount's Source) here.
Staging, swapping and reading them with os calls moves no byte through the engine:
a 1 GB RDB is written at disk speed instead of as a tar through dockerd, and a swap
is renames inside one file system, as on a local target (with the same fsyncs).

Paths are the host's: a symlink in the volume means what it means in the container,
so reads do not follow one (the caller reads such a file through the engine) and
writes refuse a symlink on the way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat as stat_module
from collections.abc import Iterable, Iterator

from redis_dr.errors import ConfigError, IntegrityError, NotFoundError, PermanentError
from redis_dr.platforms.base import (
    WORK_DIR,
    FileInfo,
    Swap,
    aside_dir,
    check_name,
    check_tag,
    staging_dir,
)
from redis_dr.platforms.local import (
    _file_info,
    _fsync_dir,
    _os_error,
    _remove_empty_tree,
    _write_all,
)

CHUNK_SIZE = 1024 * 1024


class SymlinkOnTheWay(PermanentError):
    """A name in the data directory passes through a symlink: only the container can resolve it."""


class HostDataDir:
    """The data directory at `path` on this host; files get `owner` (uid, gid).

    The contract's file operations (see redis_dr/platforms/base.py) with plain os calls;
    the caller checks that the server is stopped before a swap.
    """

    def __init__(self, path: str, owner: tuple[int, int]) -> None:
        self.path = path
        self.owner = owner

    # --- reading ---------------------------------------------------------------------------

    def stat(self, name: str) -> FileInfo | None:
        """lstat of `name` (a symlink as itself), or None."""
        path = self._path(name)
        with self._os_errors(path):
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                return None
        return _file_info(name, info)

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
                _file_info(f"{name}/{entry.name}" if name else entry.name, entry.stat(follow_symlinks=False))
                for entry in entries
            ]

    def read_file(self, name: str) -> Iterator[bytes]:
        """Open now (NotFoundError at once; SymlinkOnTheWay for a symlink), then stream the
        size the file had at open."""
        path = self._path(name)
        with self._os_errors(path):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                raise NotFoundError(f"{path} does not exist in the data directory") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
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
        """The directories under WORK_DIR (earlier restores' aside and staging directories)."""
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
        self._make_dirs(posixpath.dirname(relative))
        final = self._path(relative)
        partial = final + ".partial"
        with self._os_errors(final):
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with self._os_errors(final):
                os.fchown(fd, *self.owner)
                os.fchmod(fd, 0o600)
            written = 0
            for chunk in chunks:  # the source's own errors propagate untranslated
                written += len(chunk)
                if written > size:
                    raise IntegrityError(f"staging {name}: more than the {size} bytes announced arrived")
                with self._os_errors(final):
                    _write_all(fd, chunk)
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
            _fsync_dir(posixpath.dirname(final))

    def swap_in(self, tag: str, names: list[str]) -> Swap:
        """Renames only: each existing name goes aside, then its staged file (if any) into place.
        On failure part-way, undone, then raised."""
        swap = Swap(check_tag(tag))
        for name in names:
            check_name(name)
            if name == WORK_DIR or name.startswith(WORK_DIR + "/"):
                raise ConfigError(f"{name!r} is redis-dr's own directory, not a data file")
        try:
            for name in names:
                live, aside = self._path(name), self._path(f"{aside_dir(tag)}/{name}")
                staged = self._path(f"{staging_dir(tag)}/{name}")
                with self._os_errors(live):
                    if os.path.lexists(live):
                        if os.path.lexists(aside):
                            raise PermanentError(
                                f"{aside_dir(tag)}/{name} already exists in {self.path}: an earlier "
                                f"restore tagged {tag} was not undone"
                            )
                        self._make_dirs(posixpath.dirname(f"{aside_dir(tag)}/{name}"))
                        os.rename(live, aside)
                        swap.moved_aside.append(name)
                    if os.path.lexists(staged):
                        os.rename(staged, live)
                        swap.placed.append(name)
            with self._os_errors(self.path):
                for directory in {posixpath.dirname(self._path(name)) for name in names}:
                    _fsync_dir(directory)
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
                        self._make_dirs(posixpath.dirname(f"{staging_dir(swap.tag)}/{name}"))
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
        if not failures:
            _remove_empty_tree(self._path(aside_dir(swap.tag)))
            with contextlib.suppress(OSError):
                _fsync_dir(self.path)
            return
        first = failures[0]
        if len(failures) > 1:
            raise type(first)(f"{first} (and {len(failures) - 1} more names not put back)") from first
        raise first

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
        """The host path of a data-dir name; SymlinkOnTheWay when a directory above it is a
        symlink (it would resolve on this host, not in the container)."""
        parts = check_name(name).split("/")
        path = self.path
        for part in parts[:-1]:
            path = posixpath.join(path, part)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                break
            except OSError as exc:
                raise _os_error(exc, path, self.path) from None
            if stat_module.S_ISLNK(mode):
                raise SymlinkOnTheWay(f"{path} is a symlink: it is not followed out of the container")
        return posixpath.join(self.path, *parts)

    def _make_dirs(self, relative: str) -> None:
        """Create each missing directory of `relative` under the data dir: mode 0700, owned."""
        uid, gid = self.owner
        path = self.path
        for part in relative.split("/"):
            path = posixpath.join(path, part)
            with self._os_errors(path):
                try:
                    os.mkdir(path, 0o700)
                except FileExistsError:
                    if not stat_module.S_ISDIR(os.lstat(path).st_mode):
                        raise SymlinkOnTheWay(f"{path} is not a directory") from None
                    continue
                os.chmod(path, 0o700)
                os.chown(path, uid, gid)

    @contextlib.contextmanager
    def _os_errors(self, path: str) -> Iterator[None]:
        """OS errors as one-line project errors naming the path and the data directory."""
        try:
            yield
        except OSError as exc:
            raise _os_error(exc, path, self.path) from None
