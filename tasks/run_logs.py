"""Run logs that say what went wrong in one line, with the traceback kept at debug level.

When a task fails for good, Prefect logs "Task run failed with exception:
TransientError('cannot reach Redis ...') - Retries are exhausted" at ERROR with
the whole traceback attached: some 60 lines of Prefect's engine under the one
line that matters. Our own errors (`RedisDRError`) are operational, their
message is the diagnosis, so their records keep the line and lose the
traceback; the traceback is logged again at DEBUG, where it shows only when
someone turns debug logging on. Anything else (a bug) keeps its traceback.
"""

import copy
import logging
from typing import Any

from redis_dr.errors import RedisDRError

#: What `get_run_logger()` returns.
RunLog = logging.Logger | logging.LoggerAdapter[Any]
#: The loggers of Prefect's run engines (run loggers are adapters over these).
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


class OneLineErrors(logging.Filter):
    """Move the traceback of a RedisDRError record from its level to a DEBUG record."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno <= logging.DEBUG or not isinstance(exc, RedisDRError):
            return True
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(logging.DEBUG):
            detail = copy.copy(record)
            detail.levelno, detail.levelname = logging.DEBUG, "DEBUG"
            detail.msg, detail.args = "traceback of: %s", (record.getMessage(),)
            logger.handle(detail)
        record.exc_info = None
        record.exc_text = None
        return True


def one_line_errors() -> None:
    """Install the filter on Prefect's run loggers (idempotent; call it in each flow run).

    Called from the flow body rather than at import, because a served flow's
    function travels by value to the process that runs it, which need not
    import the flow's module at all.
    """
    for name in RUN_LOGGERS:
        _install(name, OneLineErrors)


def _install(logger_name: str, kind: type[logging.Filter]) -> None:
    """Add a filter of this kind to the logger, unless it has one."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())


#: Prefect's warning for a task with a timeout in a worker thread (each copy runs in one).
THREAD_TIMEOUT_NOTE = (
    "Timeout of %s seconds configured for this task, but the task is running in a worker thread"
)


class ThreadTimeoutNoteAtDebug(logging.Filter):
    """Log Prefect's worker-thread timeout warning at DEBUG: it is true of every task here, and
    expected. The timeout cannot interrupt a blocking call in any thread; the storage sockets'
    own timeouts bound each call (tasks/policy.py), the task timeout bounds the task."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and str(record.msg).startswith(THREAD_TIMEOUT_NOTE):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_thread_timeout_note() -> None:
    """Install the filter on Prefect's task-run logger (idempotent; called in each flow run)."""
    _install("prefect.task_runs", ThreadTimeoutNoteAtDebug)
