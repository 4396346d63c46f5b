"""Reading why a redis-server stopped from its log (a local logfile, or a container's output)."""

from __future__ import annotations

import re

_LOG_LINE = re.compile(r"^\d+:[XCSMR] \d{1,2} \w{3} \d{4} [\d:.]+ ([#*.-]) (.*)$")
#: Warning-level lines every start writes: not a reason to stop.
_LOG_NOISE = ("WARNING", "oO0OoO0OoO0Oo", "Redis version=", "Configuration loaded", "Server initialized")


def exit_reason(text: str) -> str | None:
    """The warnings of the last run recorded in a Redis log (e.g. "Wrong RDB checksum"),
    start-up boilerplate left out; None when it says nothing."""
    run = text.rsplit("oO0OoO0OoO0Oo Redis is starting", 1)[-1]
    messages = []
    for line in run.splitlines():
        found = _LOG_LINE.match(line.strip())
        if found and found.group(1) == "#" and not found.group(2).startswith(_LOG_NOISE):
            messages.append(found.group(2).strip())
    return "; ".join(messages[-3:]) or None
