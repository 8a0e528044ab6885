"""Where a text file stops being UTF-8: the line and column of its first bad byte.

Decoders report a bad byte by its position in the chunk they were decoding
(pandas' CSV reader: "in position 0"), which names no place in the file. The
data readers call this on that error path only, to say which line to fix.
"""

from __future__ import annotations

import codecs
from pathlib import Path


def first_non_utf8(path: Path) -> str | None:
    """``line N, column C: byte 0xXX is not UTF-8 (reason)`` for the first byte of ``path``
    that is not UTF-8 (a leading BOM is not one), or None if every byte is.

    Read a line at a time as bytes: a newline byte never occurs inside a UTF-8
    sequence, so each line decodes on its own, and the line is the file's own
    (a quoted CSV field across lines counts each).
    """
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return (
                    f"line {number}, column {exc.start + 1}: byte 0x{line[exc.start]:02x} "
                    f"is not UTF-8 ({exc.reason})"
                )
    return None
