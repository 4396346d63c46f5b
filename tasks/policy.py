"""What every task shares: retry transient errors only (backoff, jitter), and honest timeouts.

Retries live here and nowhere else: the core, redis-py and the storage SDKs do
not retry underneath. A task's timeout is above the longest time the calls it
makes can block on their own sockets, so that an outage surfaces as the named
TransientError of the call that met it (and is retried), never as a bare
Prefect timeout. Prefect cannot interrupt a blocking call anyway: the sockets
bound each call, the task timeout bounds the task.
"""

import os
from typing import Any

from prefect.tasks import exponential_backoff

from redis_dr.errors import TransientError
from redis_dr.redis.connection import CONNECT_TIMEOUT, REPLY_TIMEOUT
from redis_dr.storage.base import MAX_CALL_SECONDS

RETRIES = 3
#: Seconds before the first retry; doubled each time (REDIS_DR_RETRY_DELAY overrides, e.g. in tests).
BACKOFF = float(os.environ.get("REDIS_DR_RETRY_DELAY", "5"))
JITTER = 0.5

#: open_client's defaults: connect, then one reply.
REDIS_CONNECT_SECONDS = CONNECT_TIMEOUT
REDIS_REPLY_SECONDS = REPLY_TIMEOUT
#: Connect, then each command of a check (HELLO/CLIENT SETINFO, AUTH, INFO) waiting its full timeout.
REDIS_CHECK_SECONDS = REDIS_CONNECT_SECONDS + 4 * REDIS_REPLY_SECONDS
#: Above every socket: DNS (which no SDK bounds), the Prefect API for Secret blocks, a busy machine.
MARGIN_SECONDS = 60.0
#: The data path and copies stream part by part, each part bounded by the storage timeouts.
STREAM_SECONDS = 6 * 3600.0


def storage_timeout(calls: int) -> float:
    """The timeout of a task that makes `calls` storage calls in a row (MAX_CALL_SECONDS each)."""
    return calls * MAX_CALL_SECONDS + MARGIN_SECONDS


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
