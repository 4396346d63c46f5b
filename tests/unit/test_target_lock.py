"""One restore per target on this host: a second one is refused at once, naming the first."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from redis_dr.errors import RefusedError
from redis_dr.restore.target_lock import target_lock


def _hold_then_report(state_dir: str, ready: multiprocessing.Event, release: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    import os

    os.environ["REDIS_DR_STATE_DIR"] = state_dir
    with target_lock("local:///etc/redis.conf"):
        ready.set()
        release.wait(30)


def test_a_second_restore_of_the_same_target_is_refused_and_another_target_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_DR_STATE_DIR", str(tmp_path))
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_then_report, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        held = rf"another restore of local:///etc/redis.conf is running \(pid {holder.pid} since"
        with pytest.raises(RefusedError, match=held), target_lock("local:///etc/redis.conf"):
            pass
        with target_lock("docker://other"):
            pass
    finally:
        release.set()
        holder.join(30)
    with target_lock("local:///etc/redis.conf"):  # released when its holder ended
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_DR_STATE_DIR", str(tmp_path))
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_then_report, args=(str(tmp_path), ready, release))
    holder.start()
    assert ready.wait(30)
    holder.kill()
    holder.join(30)
    with target_lock("local:///etc/redis.conf"):
        pass
