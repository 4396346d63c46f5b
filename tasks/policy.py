"""The retry policy shared by every task: retry transient errors only, with backoff and jitter."""

from __future__ import annotations

import os
from typing import Any

from prefect.tasks import exponential_backoff

from redis_dr.errors import TransientError

RETRIES = 3
#: Seconds before the first retry; doubled each time (REDIS_DR_RETRY_DELAY overrides, e.g. in tests).
BACKOFF = float(os.environ.get("REDIS_DR_RETRY_DELAY", "5"))
JITTER = 0.5


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry only if the task failed with a TransientError."""
    try:
        state.result()
    except TransientError:
        return True
    except BaseException:
        return False
    return False


RETRY_POLICY: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=BACKOFF),
    "retry_jitter_factor": JITTER,
    "retry_condition_fn": is_transient,
}
