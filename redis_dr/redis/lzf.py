"""LZF decompression (liblzf's lzf_d.c), for the few RDB strings the scanner must read in full.

Redis compresses strings longer than 20 bytes with LZF when `rdbcompression yes`
(the default), key names included. The format is a sequence of runs: a control
byte below 32 starts a literal run of control + 1 bytes; any other starts a back
reference of (control >> 5) + 2 bytes (7 means one more length byte follows)
at a distance of ((control & 0x1F) << 8) + next byte + 1.
"""

from __future__ import annotations


def lzf_decompress(data: bytes, size: int) -> bytes:
    """The `size` bytes `data` decompresses to; ValueError if it is not valid LZF of that size."""
    out = bytearray()
    pos, end = 0, len(data)
    while pos < end:
        control = data[pos]
        pos += 1
        if control < 32:  # a literal run
            run = control + 1
            if pos + run > end:
                raise ValueError("LZF literal run past the end of the input")
            out += data[pos : pos + run]
            pos += run
            continue
        length = control >> 5
        if length == 7:
            if pos >= end:
                raise ValueError("LZF back reference cut short")
            length += data[pos]
            pos += 1
        if pos >= end:
            raise ValueError("LZF back reference cut short")
        start = len(out) - ((control & 0x1F) << 8) - data[pos] - 1
        pos += 1
        length += 2
        if start < 0:
            raise ValueError("LZF back reference before the start of the output")
        if start + length <= len(out):
            out += out[start : start + length]
        else:  # the copy overlaps what it writes: byte by byte, as lzf_d.c does
            for i in range(start, start + length):
                out.append(out[i])
        if len(out) > size:
            break
    if len(out) != size:
        raise ValueError(f"LZF data decompresses to {len(out)} bytes, {size} expected")
    return bytes(out)
