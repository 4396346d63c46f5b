"""Reading a backup back: storage -> hash -> decrypt -> decompress -> hash, verified.

Every byte is checked against the manifest's sha256 of the stored and of the
original data; a file is only placed at its destination once both matched.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from redis_dr.catalog import Catalog
from redis_dr.config import AGE_IDENTITY_ENV
from redis_dr.errors import AccessDeniedError, ConfigError, IntegrityError, StorageFullError
from redis_dr.manifest import Manifest, StoredFile
from redis_dr.pipeline import Tally, WrongIdentityError, decompress, decrypt, parse_identities, prefetch
from redis_dr.progress import track
from redis_dr.storage import Storage


def identities_from_env(env: Mapping[str, str] | None = None) -> list[Any]:
    """age identities from REDIS_DR_AGE_IDENTITY: the key itself or the path of a key file."""
    value = (os.environ if env is None else env).get(AGE_IDENTITY_ENV, "").strip()
    if not value:
        return []
    if not value.startswith("AGE-SECRET-KEY-"):
        path = Path(value)
        try:
            value = path.read_text()
        except (OSError, UnicodeDecodeError, ValueError):  # missing, a directory, unreadable, binary, NUL
            raise ConfigError(f"{AGE_IDENTITY_ENV} is neither an age key nor a readable key file") from None
    return parse_identities(value)


def read_file(
    storage: Storage,
    manifest: Manifest,
    stored: StoredFile,
    identities: list[Any],
    *,
    key: str | None = None,
) -> Iterator[bytes]:
    """Yield the original bytes of one file of a backup; raise IntegrityError on any mismatch.

    `key` is where the file is stored when it is not in the catalog's layout (a runbook file).
    """
    if stored.encrypted_to and not identities:
        raise ConfigError(
            f"backup {manifest.id} is encrypted: set {AGE_IDENTITY_ENV} to the age identity "
            "(or the path of its key file) of one of its recipients"
        )
    key = key or Catalog(storage, manifest.instance).data_key(manifest.id, stored.name)
    where = f"backup {manifest.instance}/{manifest.id} ({stored.name})"
    stored_tally, raw_tally = Tally(), Tally()
    data = stored_tally.tap(prefetch(storage.get(key)))
    if stored.encrypted_to:
        data = decrypt(data, identities)
    try:
        yield from raw_tally.tap(
            track(decompress(data, stored.compression), f"{manifest.id}", stored.raw_size)
        )
    except WrongIdentityError as exc:
        raise IntegrityError(f"cannot decrypt {where}: {exc}") from None
    except IntegrityError as exc:
        raise IntegrityError(f"{where} is corrupt: {exc}") from None
    if (stored_tally.size, stored_tally.sha256) != (stored.stored_size, stored.stored_sha256):
        raise IntegrityError(f"{where} is corrupt: stored bytes do not match the manifest's checksum")
    if (raw_tally.size, raw_tally.sha256) != (stored.raw_size, stored.raw_sha256):
        raise IntegrityError(f"{where} is corrupt: restored bytes do not match the manifest")


def output_path(text: str) -> Path:
    """The path `--output` names, refused (ConfigError) if it names a directory; for argparse `type=`.

    `Path` drops a trailing slash, so it is checked here, on the text as typed.
    """
    if text.endswith(("/", os.sep)) or os.path.isdir(text):
        raise ConfigError(f"--output {text} names a directory; give a file path")
    return Path(text)


def refuse_existing(output: Path) -> None:
    """ConfigError if `output` exists or its directory does not: check it before any download.

    fetch never overwrites, and never creates directories (a typo would make a tree).
    """
    if os.path.lexists(output):
        raise ConfigError(f"{output} already exists: choose a new path (nothing overwritten)")
    if not output.parent.is_dir():
        raise ConfigError(
            f"the directory {output.parent} does not exist: create it first or choose another path "
            "(fetch creates no directories)"
        )


@contextlib.contextmanager
def _writing(output: Path) -> Iterator[None]:
    """Turn a local file-system failure while writing `output` into one error naming it."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFullError(
                f"no space left on the disk to write {output} (nothing was left there): "
                "free space or choose another path"
            ) from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            reason = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
            raise AccessDeniedError(f"cannot write {output}: {reason}; choose another path") from None
        raise


def fetch_to_file(storage: Storage, manifest: Manifest, output: Path, identities: list[Any]) -> Path:
    """Write a backup's RDB to `output` (which must not exist, in a directory that does) after
    verifying every byte; nothing partial is left behind on any failure."""
    if len(manifest.files) != 1:
        raise ConfigError(f"backup {manifest.id} has {len(manifest.files)} files; fetch one RDB")
    output = output.absolute()
    refuse_existing(output)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    with _writing(output):
        sink = open(partial, "xb")  # noqa: SIM115 (closed below: its errors are translated too)
    try:
        try:
            for chunk in read_file(storage, manifest, manifest.files[0], identities):
                with _writing(output):
                    sink.write(chunk)
            with _writing(output):
                sink.flush()
                os.fsync(sink.fileno())
        finally:
            with _writing(output):
                sink.close()
        try:
            with _writing(output):
                os.link(partial, output)
        except FileExistsError:
            raise ConfigError(
                f"{output} appeared meanwhile: choose a new path (nothing overwritten)"
            ) from None
    finally:
        partial.unlink(missing_ok=True)
    return output
