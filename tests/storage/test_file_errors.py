"""file:// storage against real file-system failures: a full disk, a read-only mount, no permission.

Tests run as root, which ignores permission bits: a full disk and a read-only
file system are real tmpfs mounts, and permission checks run in a child process
forked from the test that has dropped to an unprivileged user.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from redis_dr.errors import AccessDeniedError, StorageFullError
from redis_dr.storage.base import MiB
from redis_dr.storage.file import FileStorage
from tests.fixtures.unprivileged import NOBODY, as_nobody


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def tmpfs(tmpfs_factory: Callable[[str], Path]) -> Path:
    """A 1 MiB tmpfs mounted for this test alone."""
    return tmpfs_factory("1m")


def tree(root: Path) -> list[str]:
    """Every file and directory below root, relative."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_full_disk_is_storage_full_and_leaves_nothing(tmpfs: Path) -> None:
    store = FileStorage(tmpfs / "backups")  # the put creates the root too
    with pytest.raises(StorageFullError) as caught:
        store.put("sessions/20261125T010000Z/dump.rdb.zst", [b"x" * MiB] * 2)
    message = str(caught.value)
    assert "\n" not in message
    assert "disk is full" in message and f"file://{tmpfs}/backups" in message
    assert tree(tmpfs) == []  # no temp file, and not one of the three directories the put made


def test_full_disk_keeps_directories_the_put_did_not_make(tmpfs: Path) -> None:
    store = FileStorage(tmpfs / "backups")
    store.put_bytes("sessions/20261125T000000Z/manifest.json", b"{}")
    with pytest.raises(StorageFullError):
        store.put("sessions/20261125T010000Z/dump.rdb.zst", [b"x" * MiB] * 2)
    assert tree(tmpfs) == [
        "backups", "backups/sessions", "backups/sessions/20261125T000000Z",
        "backups/sessions/20261125T000000Z/manifest.json",
    ]  # fmt: skip


def test_read_only_file_system_is_access_denied(tmpfs: Path) -> None:
    store = FileStorage(tmpfs / "backups")
    store.put_bytes("sessions/20261125T000000Z/manifest.json", b"{}")
    done = _run("mount", "-o", "remount,ro", str(tmpfs))
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")
    for key in ("sessions/20261125T000000Z/dump.rdb", "sessions/20261125T010000Z/manifest.json"):
        with pytest.raises(
            AccessDeniedError, match=f"read-only file system.*file://{tmpfs}/backups"
        ) as caught:
            store.put_bytes(key, b"{}")
        assert str(tmpfs / "backups" / "sessions") in str(caught.value)
        assert caught.value.exit_code == 4
    assert store.get_bytes("sessions/20261125T000000Z/manifest.json") == b"{}"  # reading still works


# -- as an unprivileged user ---------------------------------------------------


def test_no_write_permission_is_access_denied(shared_dir: Path) -> None:
    root = shared_dir / "backups"
    FileStorage(root).put_bytes("sessions/20261125T000000Z/manifest.json", b"{}")  # as root, mode 755
    result = as_nobody(lambda: FileStorage(root).put_bytes("sessions/20261125T010000Z/manifest.json", b"{}"))
    assert result["error"] == "AccessDeniedError" and result["exit_code"] == 4
    assert f"permission denied on {root}/sessions" in str(result["message"])
    assert f"uid {NOBODY}" in str(result["message"])
    assert tree(root) == ["sessions", "sessions/20261125T000000Z", "sessions/20261125T000000Z/manifest.json"]


def test_listing_an_unreadable_directory_is_access_denied(shared_dir: Path) -> None:
    store = FileStorage(shared_dir / "backups")
    store.put_bytes("sessions/20261125T000000Z/manifest.json", b"{}")
    store.put_bytes("sessions/20261125T010000Z/manifest.json", b"{}")
    hidden = shared_dir / "backups" / "sessions" / "20261125T010000Z"
    hidden.chmod(0o700)  # root's alone
    result = as_nobody(lambda: list(FileStorage(store.root).list("sessions/")))
    assert result.get("error") == "AccessDeniedError", result
    assert str(hidden) in str(result["message"])
    result = as_nobody(lambda: list(FileStorage(store.root).list_dirs("sessions/")))
    assert result.get("error") == "AccessDeniedError", result
    (shared_dir / "backups/sessions/20261125T000000Z/manifest.json").chmod(0o644)  # puts make 0600 files
    readable = as_nobody(lambda: FileStorage(store.root).get_bytes("sessions/20261125T000000Z/manifest.json"))
    assert readable == {"ok": "b'{}'"}
