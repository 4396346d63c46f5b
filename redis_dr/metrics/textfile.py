"""The textfile sink: one `.prom` file per group for node_exporter's textfile collector.

Each file is replaced atomically: written to a hidden temporary file in the same
directory (node_exporter reads `*.prom` only), fsynced, renamed over the old one,
and the directory fsynced. A run replaces only the gauges it sends: the others
are read back from the file it replaces, so a failure keeps the last success
(what a Pushgateway POST does). Runs of one instance do not overlap (the
instance's lease), so the read and the rename do not race.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from redis_dr.errors import (
    AccessDeniedError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    RedisDRError,
    StorageFullError,
)
from redis_dr.metrics.model import MetricGroup, exposition

SUFFIX = ".prom"
FIX = "fix --textfile-dir / REDIS_DR_TEXTFILE_DIR, or the environment file's metrics.textfile_dir"


def write_groups(directory: str, groups: Sequence[MetricGroup]) -> list[Path]:
    """Write (merge) each group's file in `directory`; the files written. Stops at the first error."""
    root = Path(directory)
    check_directory(root)
    written = []
    for group in groups:
        path = root / f"{group.file_stem}{SUFFIX}"
        families = [*group.families, *kept_families(path, group.names)]
        write_atomically(path, exposition(sorted(families, key=lambda family: family.name)))
        written.append(path)
    _fsync_directory(root)
    return written


def check_directory(root: Path) -> None:
    """An existing directory this process can write in; else one line saying which and what to do."""
    where = f"metrics not written to {root}"
    if not root.exists():
        raise NotFoundError(f"{where}: it does not exist (create it where node_exporter reads, or {FIX})")
    if not root.is_dir():
        raise ConfigError(f"{where}: it is not a directory ({FIX})")
    if not os.access(root, os.W_OK | os.X_OK):
        raise AccessDeniedError(
            f"{where}: user {os.geteuid()} may not write in it (give it write access, or {FIX})"
        )


def kept_families(path: Path, replaced: set[str]) -> list[Metric]:
    """The families of the existing file that this run does not send (none without a file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise _os_error(path.parent, exc) from None
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise IntegrityError(
            f"metrics not written to {path}: the file there cannot be read back ({exc}); "
            "remove it (its last success is lost) and run again"
        ) from None
    return [family for family in families if family.name not in replaced]


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` so that a reader sees the old file or the new one, never a part."""
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _os_error(path.parent, exc) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # node_exporter may run as another user
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise _os_error(path.parent, exc) from None


def _fsync_directory(root: Path) -> None:
    """Make the renames durable."""
    try:
        descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot fsync a directory; the files themselves are synced
    finally:
        os.close(descriptor)


def _os_error(root: Path, exc: OSError) -> RedisDRError:
    """One line for a failed write in the directory."""
    where = f"metrics not written to {root}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessDeniedError(f"{where}: {exc.strerror.lower() if exc.strerror else exc} ({FIX})")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"{where}: no space left on its file system")
    if exc.errno == errno.ENOENT:
        return NotFoundError(f"{where}: it does not exist (create it where node_exporter reads, or {FIX})")
    return PermanentError(f"{where}: {exc.strerror or exc}")
