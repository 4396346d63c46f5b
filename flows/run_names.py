"""Run names: `<kind>-<instance>-<UTC start, as a backup id>`, so that runs of one instance are told
apart at a glance (`backup-sessions-20261125T090000Z`).

No `from __future__ import annotations` in flows/ (see flows/backup.py).
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prefect.context import FlowRunContext

from redis_dr.manifest import BACKUP_ID_FORMAT


def run_name_for(kind: str) -> Callable[[], str]:
    """A flow's `flow_run_name`: the kind of run, the instance of its request, its UTC start."""

    def run_name() -> str:
        context = FlowRunContext.get()
        request: Any = (context.parameters or {}).get("request") if context else None
        instance = request.get("instance") if isinstance(request, dict) else getattr(request, "instance", "")
        return f"{kind}-{instance or 'redis'}-{datetime.now(UTC).strftime(BACKUP_ID_FORMAT)}"

    return run_name
