"""Running flows from a terminal: Prefect's console output without tracebacks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

LOGGING_CONFIG = Path(__file__).with_name("logging.yml")


class NoTracebacks(logging.Filter):
    """Keep the log line, drop the traceback: the CLI prints one clear error line itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_prefect_console() -> None:
    """Configure Prefect (before its first import) for a terminal: no tracebacks, no telemetry.

    Settings already present in the environment win.
    """
    os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", str(LOGGING_CONFIG))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import prefect  # noqa: F401  (importing Prefect sets up its logging from the file above)
