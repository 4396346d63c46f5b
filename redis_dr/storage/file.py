"""A directory on a local (or mounted) file system as storage: `file:///var/backups/redis`."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from redis_dr.errors import AccessDeniedError, AlreadyExistsError, NotFoundError
from redis_dr.storage.base import CHUNK_SIZE, ObjectInfo, Storage, check_key, check_prefix

_PARTIAL = ".partial"


def _is_partial(name: str) -> bool:
    return name.startswith(".") and name.endswith(_PARTIAL)


class FileStorage(Storage):
    """Objects are files under `root`; keys map to relative paths.

    Puts write a hidden `.<name>.<random>.partial` temp file in the target
    directory, fsync it and hard-link it to the final name, which fails
    atomically if the name is taken. Temp files are never listed.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _denied(self, exc: PermissionError) -> AccessDeniedError:
        return AccessDeniedError(
            f"permission denied on {exc.filename or self.root}: the user running redis-dr "
            f"(uid {os.getuid()}) needs read/write access to {self.root}"
        )

    def _missing(self, key: str) -> NotFoundError:
        if not self.root.is_dir():
            return NotFoundError(f"directory {self.root} does not exist: check the storage URL")
        return NotFoundError(f"{self.url}/{key} not found")

    def put(self, key: str, chunks: Iterable[bytes], *, storage_class: str | None = None) -> ObjectInfo:
        """Write create-only via temp file + fsync + hard link. storage_class is ignored."""
        final = self._path(key)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                raise AlreadyExistsError(f"{self.url}/{key} already exists")
            fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=_PARTIAL)
        except PermissionError as exc:
            raise self._denied(exc) from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, final)
            except FileExistsError:
                raise AlreadyExistsError(f"{self.url}/{key} already exists") from None
            _fsync_dir(final.parent)
        except PermissionError as exc:
            raise self._denied(exc) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return self.stat(key)

    def get(self, key: str) -> Iterator[bytes]:
        """Open the file now (so NotFoundError is raised at once) and stream it."""
        path = self._path(key)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(key) from None
        except PermissionError as exc:
            raise self._denied(exc) from exc
        return _read(handle)

    def stat(self, key: str) -> ObjectInfo:
        """Size and mtime of the file."""
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(key) from None
        except PermissionError as exc:
            raise self._denied(exc) from exc
        if not path.is_file():
            raise self._missing(key)
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every file whose key starts with prefix, in key order (temp files skipped)."""
        check_prefix(prefix)
        if not self.root.is_dir():
            return  # a directory that does not exist yet holds nothing; put creates it
        start = self.root / prefix.rpartition("/")[0]
        keys: list[str] = []
        try:
            for dirpath, _dirs, files in os.walk(start):
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for name in files:
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix) and not _is_partial(name):
                        keys.append(key)
        except PermissionError as exc:
            raise self._denied(exc) from exc
        for key in sorted(keys):
            try:
                yield self.stat(key)
            except NotFoundError:
                continue  # deleted while listing

    def delete(self, key: str) -> None:
        """Remove the file and any directories this leaves empty (up to root)."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            return
        except PermissionError as exc:
            raise self._denied(exc) from exc
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _read(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
