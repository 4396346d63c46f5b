"""A directory on a local (or mounted) file system as storage: `file:///var/backups/redis`."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from redis_dr.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    NotFoundError,
    PermanentError,
    RedisDRError,
    StorageFullError,
    TransientError,
)
from redis_dr.storage.base import (
    CHUNK_SIZE,
    ObjectInfo,
    StaleUpload,
    Storage,
    check_dir_prefix,
    check_key,
    check_prefix,
)

_PARTIAL = ".partial"
_DENIED = (errno.EACCES, errno.EPERM)
_FULL = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted"}
_TRANSIENT = (errno.ETIMEDOUT, errno.EAGAIN, errno.EINTR, errno.ESTALE)  # e.g. an NFS mount
_TEMP_ATTEMPTS = 3  # a concurrent delete may remove an empty directory between mkdir and mkstemp


def _is_partial(name: str) -> bool:
    return name.startswith(".") and name.endswith(_PARTIAL)


class FileStorage(Storage):
    """Objects are files under `root`; keys map to relative paths.

    Puts write a hidden `.<name>.<random>.partial` temp file in the target
    directory, fsync it and hard-link it to the final name, which fails
    atomically if the name is taken. Temp files are never listed. OS errors
    become the project's own: permission denied and read-only file systems are
    AccessDeniedError, a full disk or quota StorageFullError.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _error(self, exc: Exception, key: str) -> RedisDRError | None:
        """Translate an OSError met while working on key (None: not an OS error)."""
        if not isinstance(exc, OSError):
            return None
        path = exc.filename or self.root / key
        if exc.errno in _DENIED:
            return AccessDeniedError(
                f"permission denied on {path}: the user running redis-dr "
                f"(uid {os.getuid()}) needs read/write access to {self.root}"
            )
        if exc.errno == errno.EROFS:
            return AccessDeniedError(
                f"{path} is on a read-only file system: remount it read-write or choose "
                f"another location than {self.url}"
            )
        if exc.errno in _FULL:
            return StorageFullError(
                f"{_FULL[exc.errno]} at {self.url} (writing {path}): free space there "
                "or choose another location"
            )
        if exc.errno in _TRANSIENT:
            return TransientError(f"file system temporarily failed on {path}: {exc.strerror}")
        return PermanentError(f"file system error on {path}: {exc.strerror or exc}")

    def _missing(self, key: str) -> NotFoundError:
        if not self.root.is_dir():
            return NotFoundError(f"directory {self.root} does not exist: check the storage URL")
        return NotFoundError(f"{self.url}/{key} not found")

    # -- writing -----------------------------------------------------------------

    def put(self, key: str, chunks: Iterable[bytes], *, storage_class: str | None = None) -> ObjectInfo:
        """Write create-only via temp file + fsync + hard link. storage_class is ignored."""

        def fill(fd: int) -> None:
            for chunk in chunks:  # the source's own errors propagate untranslated
                with self._translated(key):
                    _write_all(fd, chunk)

        return self._create(key, fill)

    def copy_from(self, source: Storage, source_key: str, key: str) -> ObjectInfo | None:
        """Copy a file of another file location: a real second copy, never a link.

        The kernel copies (sendfile) into a temp file that is published like a
        put. Not copy_file_range: on btrfs and XFS it may share the source's
        blocks (a reflink), and a second location must survive damage to the first.
        """
        if not isinstance(source, FileStorage):
            return None
        with source._translated(source_key):
            try:
                handle = source._path(source_key).open("rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise source._missing(source_key) from None

        def fill(fd: int) -> None:
            with self._translated(key):
                size = os.fstat(handle.fileno()).st_size
                offset = 0
                while sent := os.sendfile(fd, handle.fileno(), offset, max(size - offset, CHUNK_SIZE)):
                    offset += sent

        with handle:
            return self._create(key, fill)

    def _create(self, key: str, fill: Callable[[int], None]) -> ObjectInfo:
        """Publish what fill writes into a temp file as key, create-only; leave nothing on failure."""
        final = self._path(key)
        created: list[Path] = []
        tmp: Path | None = None
        try:
            with self._translated(key):
                fd, tmp = self._temp_file(key, final, created)
            try:
                fill(fd)
                with self._translated(key):
                    os.fsync(fd)
            finally:
                os.close(fd)
            with self._translated(key):
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    raise AlreadyExistsError(f"{self.url}/{key} already exists") from None
                try:
                    _fsync_dir(final.parent)
                except BaseException:
                    final.unlink()  # ours (the link just made it), and not known to be durable
                    raise
        except BaseException:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
                tmp = None
            _remove_empty(reversed(created))
            raise
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return self.stat(key)

    def _temp_file(self, key: str, final: Path, created: list[Path]) -> tuple[int, Path]:
        """Make final's directories (recording those made) and a temp file beside final."""
        attempt = 1
        while True:
            _make_dirs(final.parent, created)
            if final.exists():
                raise AlreadyExistsError(f"{self.url}/{key} already exists")
            try:
                fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=_PARTIAL)
            except FileNotFoundError:
                if attempt == _TEMP_ATTEMPTS:
                    raise
                attempt += 1
                continue
            return fd, Path(name)

    # -- reading -----------------------------------------------------------------

    def get(self, key: str) -> Iterator[bytes]:
        """Open the file now (so NotFoundError is raised at once) and stream it."""
        path = self._path(key)
        with self._translated(key):
            try:
                handle = path.open("rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise self._missing(key) from None
        return self._read(handle, key)

    def _read(self, handle: BinaryIO, key: str) -> Iterator[bytes]:
        with handle, self._translated(key):
            while chunk := handle.read(CHUNK_SIZE):
                yield chunk

    def stat(self, key: str) -> ObjectInfo:
        """Size and mtime of the file."""
        path = self._path(key)
        with self._translated(key):
            try:
                st = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                raise self._missing(key) from None
        if not path.is_file():
            raise self._missing(key)
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every file whose key starts with prefix, in key order (temp files skipped).

        An unreadable directory raises AccessDeniedError: a listing never
        silently leaves part of the tree out.
        """
        check_prefix(prefix)
        if not self.root.is_dir():
            return  # a directory that does not exist yet holds nothing; put creates it
        start = self.root / prefix.rpartition("/")[0]
        keys: list[str] = []
        with self._translated(prefix):
            for dirpath, _dirs, files in os.walk(start, onerror=_raise_unless_gone):
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for name in files:
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix) and not _is_partial(name):
                        keys.append(key)
        for key in sorted(keys):
            try:
                yield self.stat(key)
            except NotFoundError:
                continue  # deleted while listing

    def list_dirs(self, prefix: str = "") -> Iterator[str]:
        """Subdirectories of root/prefix that hold at least one object, in byte order."""
        base = self.root / check_dir_prefix(prefix)
        with self._translated(prefix):
            try:
                with os.scandir(base) as entries:
                    names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
            except (FileNotFoundError, NotADirectoryError):
                return
        for name in sorted(names):  # code point order of str is UTF-8 byte order
            with self._translated(prefix + name):
                if _holds_objects(base / name):
                    yield name

    # -- deleting ----------------------------------------------------------------

    def delete(self, key: str) -> None:
        """Remove the file and any directories this leaves empty (up to root)."""
        path = self._path(key)
        with self._translated(key):
            try:
                path.unlink(missing_ok=True)
            except (IsADirectoryError, NotADirectoryError):
                return
        self._remove_empty_parents(path)

    def stale_uploads(self, prefix: str, started_before: datetime) -> Sequence[StaleUpload]:
        """Hidden `.<name>.<random>.partial` temp files under prefix last written before the cut-off.

        A put that crashed (killed process, lost machine) leaves its temp file: it is
        never listed, but it holds bytes and keeps its directory.
        """
        check_prefix(prefix)
        if not self.root.is_dir():
            return []
        start = self.root / prefix.rpartition("/")[0]
        found: list[StaleUpload] = []
        with self._translated(prefix):
            for dirpath, _dirs, files in os.walk(start, onerror=_raise_unless_gone):
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for name in files:
                    key = name if rel == "." else f"{rel}/{name}"
                    if not (_is_partial(name) and key.startswith(prefix)):
                        continue
                    written = self._written(Path(dirpath) / name)
                    if written is not None and written < started_before:
                        found.append(StaleUpload(key=key, started=written))
        return sorted(found, key=lambda upload: upload.key)

    def abort_upload(self, upload: StaleUpload) -> bool:
        """Delete the temp file unless it is gone or was written to since it was listed."""
        if not _is_partial(upload.key.rpartition("/")[2]):
            raise PermanentError(f"{self.url}/{upload.key} is not a temp file: not removing it")
        path = self._path(upload.key)
        with self._translated(upload.key):
            written = self._written(path)
            if written is None or written > upload.started:
                return False
            try:
                path.unlink()
            except FileNotFoundError:
                return False
        self._remove_empty_parents(path)
        return True

    @staticmethod
    def _written(path: Path) -> datetime | None:
        """When the file was last written (None if it is gone)."""
        try:
            return datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _remove_empty_parents(self, path: Path) -> None:
        """Remove the directories above path that are left empty, up to root."""
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _make_dirs(directory: Path, created: list[Path]) -> None:
    """Create directory and its missing parents, appending each one this call made to created."""
    missing: list[Path] = []
    path = directory
    while True:
        try:
            os.stat(path)
            break
        except FileNotFoundError:
            missing.append(path)
            path = path.parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            continue  # made meanwhile by another writer: not ours to remove
        created.append(path)


def _remove_empty(directories: Iterable[Path]) -> None:
    """Remove each directory (deepest first) if it is empty; stop at the first that is not."""
    for path in directories:
        try:
            path.rmdir()
        except OSError:
            return


def _holds_objects(directory: Path) -> bool:
    """Whether any file below directory is an object (not a temp file of a put in progress)."""
    for _dirpath, _dirs, files in os.walk(directory, onerror=_raise_unless_gone):
        if any(not _is_partial(name) for name in files):
            return True
    return False


def _raise_unless_gone(exc: OSError) -> None:
    """os.walk's onerror: a directory removed meanwhile is empty, any other error is raised."""
    if not isinstance(exc, FileNotFoundError | NotADirectoryError):
        raise exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # some file systems cannot fsync a directory
            raise
    finally:
        os.close(fd)
