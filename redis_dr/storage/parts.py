"""Cutting a stream of byte chunks into fixed-size parts with bounded memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def split_parts(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Yield parts of exactly `size` bytes, then the remainder.

    Always yields at least one part (b"" for an empty stream) and never an
    empty part after that. Holds at most one part plus one chunk.
    """
    buffer = bytearray()
    emitted = False
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            with memoryview(buffer) as view:
                part = bytes(view[:size])  # one copy (a bytearray slice would be a second)
            del buffer[:size]
            emitted = True
            yield part
    if buffer or not emitted:
        yield bytes(buffer)
