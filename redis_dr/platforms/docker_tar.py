"""Tar streams for the Docker archive API: the only way into a container with no shell.

What the engine does with an archive given to `put_archive` (moby pkg/archive `Unpack`
and `createTarFile`, the same from 20.10 to 28; tests/platforms/test_docker_platform.py
checks each point on the engine at hand):

- Each entry gets the uid/gid of its header (lchown) and the mode of its header; a
  directory entry for an existing directory only re-applies owner, mode and times.
- An existing path is removed (`RemoveAll`) before an entry replaces it, unless both
  are directories.
- A hard-link entry (`TypeLink`) is `link(2)` of its Linkname, relative to the extraction
  directory, to its name: a rename is a link to the new name plus the old name replaced.
  The header's uid/gid are applied to the shared inode; its mode is not.
- A missing parent directory is created root-owned 0755: always send parents first.
- Extraction stops at the first failing entry, after that entry's removal: a hard link
  of a name to itself removes the name (and everything under it) and then fails. This
  is the archive API's only way to remove a name.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from redis_dr.errors import IntegrityError

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


@dataclass(frozen=True)
class Entry:
    """What an archive entry says about one path (no content)."""

    name: str
    kind: bytes  # tarfile.REGTYPE, DIRTYPE, SYMTYPE, LNKTYPE, ...
    size: int
    mode: int
    uid: int
    gid: int
    mtime: float
    linkname: str = ""

    @property
    def is_dir(self) -> bool:
        """Whether the entry is a directory."""
        return self.kind == tarfile.DIRTYPE


def header(
    name: str,
    kind: bytes,
    *,
    mode: int,
    uid: int,
    gid: int,
    size: int = 0,
    linkname: str = "",
    mtime: float | None = None,
) -> bytes:
    """One entry's header block(s) (PAX, so long names fit)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.size = size
    info.linkname = linkname
    info.mtime = int(time.time() if mtime is None else mtime)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def directory(name: str, *, mode: int, uid: int, gid: int, mtime: float | None = None) -> bytes:
    """A directory entry."""
    return header(name.rstrip("/") + "/", tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid, mtime=mtime)


def hard_link(name: str, target: str, *, like: Entry) -> bytes:
    """A hard link `name` -> `target`, with `like`'s owner and times (applied to the shared inode)."""
    return header(
        name, tarfile.LNKTYPE, mode=like.mode, uid=like.uid, gid=like.gid, linkname=target, mtime=like.mtime
    )


def empty_file(name: str, *, uid: int = 0, gid: int = 0) -> bytes:
    """An empty regular file (replaces whatever `name` was)."""
    return header(name, tarfile.REGTYPE, mode=0o600, uid=uid, gid=gid)


def removal(name: str) -> bytes:
    """The entry that removes `name` and then fails (a hard link to itself); see the module."""
    return header(name, tarfile.LNKTYPE, mode=0o600, uid=0, gid=0, linkname=name)


def archive(*headers: bytes) -> bytes:
    """A complete archive of header-only entries."""
    return b"".join(headers) + END_OF_ARCHIVE


def file_archive(
    before: Iterable[bytes],
    name: str,
    chunks: Iterable[bytes],
    size: int,
    *,
    mode: int,
    uid: int,
    gid: int,
) -> Iterator[bytes]:
    """Stream an archive: the `before` entries, then one file of exactly `size` bytes from `chunks`.

    Constant memory: the chunks pass through as they come. Raises IntegrityError (which
    aborts the upload) when the chunks hold more or fewer bytes than `size`.
    """
    yield b"".join(before) + header(name, tarfile.REGTYPE, mode=mode, uid=uid, gid=gid, size=size)
    sent = 0
    for chunk in chunks:
        if not chunk:
            continue
        sent += len(chunk)
        if sent > size:
            raise IntegrityError(f"{name}: more than the {size} bytes announced arrived")
        yield bytes(chunk) if not isinstance(chunk, bytes) else chunk
    if sent != size:
        raise IntegrityError(f"{name}: {sent} bytes arrived where {size} were announced")
    yield b"\0" * (-size % BLOCK) + END_OF_ARCHIVE


def entry_of(info: tarfile.TarInfo) -> Entry:
    """An Entry from a member read by tarfile."""
    return Entry(
        name=info.name.rstrip("/"),
        kind=info.type,
        size=info.size,
        mode=info.mode & 0o7777,
        uid=info.uid,
        gid=info.gid,
        mtime=info.mtime,
        linkname=info.linkname,
    )


def open_stream(stream: IO[bytes], bufsize: int = 64 * 1024) -> tarfile.TarFile:
    """A tar reader over a stream, member by member (contents skipped unless read). `bufsize`:
    bytes asked of the stream at a time (a read blocks until that many came or the end)."""
    return tarfile.open(fileobj=stream, mode="r|", bufsize=bufsize)


def read_entries(stream: IO[bytes], bufsize: int = 64 * 1024) -> Iterator[Entry]:
    """The entries of an archive stream, in order (contents skipped)."""
    with open_stream(stream, bufsize) as tar:
        for info in tar:
            yield entry_of(info)
