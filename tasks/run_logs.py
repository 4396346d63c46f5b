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

from redis_dr.errors import RedisDRError

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
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineErrors) for f in logger.filters):
            logger.addFilter(OneLineErrors())
