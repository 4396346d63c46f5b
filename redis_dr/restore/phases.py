"""Timing a restore's phases (fetch, preflight, checkpoint, stop, place, load, verify)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class PhaseClock:
    """Seconds spent per phase; a phase entered twice adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._current: str | None = None
        self._since = time.monotonic()

    def enter(self, phase: str | None) -> None:
        """End the current phase (if any) and start `phase` (None: just end it)."""
        now = time.monotonic()
        if self._current is not None:
            self.seconds[self._current] = self.seconds.get(self._current, 0.0) + now - self._since
        self._current, self._since = phase, now

    def add(self, seconds: dict[str, float]) -> None:
        """Add phases timed elsewhere (a task's own clock) to these."""
        for name, value in seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + value

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as phase `name`."""
        self.enter(name)
        try:
            yield
        finally:
            self.enter(None)
