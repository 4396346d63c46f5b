"""The textfile sink: atomic files that keep the last success through later failures."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from redis_dr.errors import AccessDeniedError, ConfigError, IntegrityError, NotFoundError, StorageFullError
from redis_dr.metrics.model import Operation, RunMetrics, groups_of
from redis_dr.metrics.publish import publish
from redis_dr.metrics.targets import MetricsTargets
from redis_dr.metrics.textfile import write_groups
from tests.fixtures.unprivileged import as_nobody

FIRST = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
LATER = FIRST + timedelta(hours=1)


def run(succeeded: bool, at: datetime, **figures: object) -> RunMetrics:
    return RunMetrics.model_validate({
        "operation": Operation.BACKUP, "environment": "staging", "instance": "sessions",
        "location": "file:///var/backups/redis", "succeeded": succeeded, "finished_at": at,
        "duration_seconds": 3.0, "primary": True, **figures,
    })  # fmt: skip


def values(directory: Path) -> dict[str, float]:
    """Every gauge in the directory's .prom files: name -> value (one sample each)."""
    found: dict[str, float] = {}
    for path in sorted(directory.glob("*.prom")):
        for family in text_string_to_metric_families(path.read_text()):
            (sample,) = family.samples
            assert family.name not in found, f"{family.name} twice"
            found[family.name] = sample.value
    return found


def test_a_failure_keeps_the_last_success(tmp_path: Path) -> None:
    write_groups(str(tmp_path), groups_of([run(True, FIRST, size_bytes=4096, key_count=10)]))
    write_groups(str(tmp_path), groups_of([run(False, LATER)]))
    found = values(tmp_path)
    assert found["redis_dr_last_success_timestamp_seconds"] == FIRST.timestamp()
    assert found["redis_dr_last_success_size_bytes"] == 4096
    assert found["redis_last_backup_timestamp_seconds"] == FIRST.timestamp()
    assert found["redis_dr_last_attempt_timestamp_seconds"] == LATER.timestamp()
    assert found["redis_dr_last_failure_timestamp_seconds"] == LATER.timestamp()
    assert found["redis_dr_last_run_success"] == 0


def test_a_later_success_replaces_what_it_sends_and_keeps_the_failure_time(tmp_path: Path) -> None:
    then = LATER + timedelta(hours=1)
    for ran in (run(True, FIRST, key_count=10), run(False, LATER), run(True, then, key_count=12)):
        write_groups(str(tmp_path), groups_of([ran]))
    found = values(tmp_path)
    assert found["redis_dr_last_success_timestamp_seconds"] == then.timestamp()
    assert found["redis_dr_last_success_keys"] == 12
    assert found["redis_dr_last_failure_timestamp_seconds"] == LATER.timestamp()
    assert found["redis_dr_last_run_success"] == 1


def test_files_are_complete_readable_by_others_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    written = write_groups(str(tmp_path), groups_of([run(True, FIRST)]))
    assert sorted(os.listdir(tmp_path)) == sorted(path.name for path in written)
    for path in written:
        assert path.suffix == ".prom"
        assert path.stat().st_mode & 0o777 == 0o644
        assert path.read_text().endswith("\n")


def test_a_full_file_system_leaves_the_previous_file_whole(tmpfs_factory: Callable[[str], Path]) -> None:
    directory = tmpfs_factory("64k")
    write_groups(str(directory), groups_of([run(True, FIRST, key_count=10)]))
    before = {path.name: path.read_bytes() for path in directory.glob("*.prom")}
    with (directory / "filler").open("wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with pytest.raises(StorageFullError) as caught:
        write_groups(str(directory), groups_of([run(False, LATER)]))
    assert str(caught.value) == f"metrics not written to {directory}: no space left on its file system"
    assert {path.name: path.read_bytes() for path in directory.glob("*.prom")} == before
    assert not [name for name in os.listdir(directory) if name.endswith(".tmp")]


def test_a_missing_directory_is_one_line_naming_it_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(NotFoundError) as caught:
        publish(MetricsTargets(textfile_dir=str(missing)), [run(True, FIRST)])
    message = str(caught.value)
    assert message.startswith(f"metrics not written to {missing}: it does not exist")
    assert "--textfile-dir" in message and "REDIS_DR_TEXTFILE_DIR" in message
    assert "\n" not in message


def test_a_file_where_the_directory_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        write_groups(str(tmp_path / "file"), groups_of([run(True, FIRST)]))


def test_an_unwritable_directory_is_refused_in_one_line(shared_dir: Path) -> None:
    directory = shared_dir / "textfiles"
    directory.mkdir(mode=0o755)  # root's: the unprivileged user may read, not write
    answer = as_nobody(lambda: write_groups(str(directory), groups_of([run(True, FIRST)])))
    assert answer["error"] == AccessDeniedError.__name__
    assert answer["message"] == (
        f"metrics not written to {directory}: user 65534 may not write in it (give it write access, or "
        "fix --textfile-dir / REDIS_DR_TEXTFILE_DIR, or the environment file's metrics.textfile_dir)"
    )
    assert os.listdir(directory) == []


def test_a_previous_file_that_cannot_be_read_back_is_named_not_overwritten(tmp_path: Path) -> None:
    (group, _) = groups_of([run(True, FIRST)])
    garbage = tmp_path / f"{group.file_stem}.prom"
    garbage.write_text("this is { not the text format\n")
    with pytest.raises(IntegrityError) as caught:
        write_groups(str(tmp_path), groups_of([run(False, LATER)]))
    assert str(garbage) in str(caught.value) and "remove it" in str(caught.value)
    assert garbage.read_text() == "this is { not the text format\n"
