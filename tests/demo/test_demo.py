"""`redis-dr demo` runs the whole disaster end to end: backup, break, restore by file, replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def test_the_demo_breaks_and_restores_a_session_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "demo", "--sessions", "600", "--backups", str(tmp_path / "backups"))

    assert code == 0, err
    assert "FAIL" not in err
    assert err.count("recovery time:") == 2
    restored = next(line for line in err.splitlines() if line.strip().startswith("restored "))
    have, had = restored.split("restored ")[1].split(" keys (had ")
    assert have == had.split(")")[0]  # every key back after the disaster
    assert "user:demo-change still there: True" in err
    assert (tmp_path / "backups" / "demo-sessions" / out.strip() / "manifest.json").exists()
