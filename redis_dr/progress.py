"""Progress reporting for long transfers, without tying the core to a display.

The core calls `track`; a front end (the CLI on a terminal) installs a factory
that draws a progress bar. Without one, tracking costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol


class ProgressBar(Protocol):
    """Something that can show bytes moving."""

    def advance(self, amount: int) -> None:
        """Count `amount` more bytes done."""

    def close(self) -> None:
        """The transfer is over."""


ProgressFactory = Callable[[str, "int | None"], ProgressBar]

_factory: ProgressFactory | None = None


def set_progress_factory(factory: ProgressFactory | None) -> None:
    """Install (or remove, with None) the factory that makes progress bars."""
    global _factory
    _factory = factory


def track(chunks: Iterable[bytes], description: str, total: int | None = None) -> Iterator[bytes]:
    """Pass chunks through, advancing a progress bar if a front end installed one."""
    if _factory is None:
        yield from chunks
        return
    bar = _factory(description, total)
    try:
        for chunk in chunks:
            bar.advance(len(chunk))
            yield chunk
    finally:
        bar.close()
