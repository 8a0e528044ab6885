"""JSON read strictly: a key given twice in one object is an error, not last-wins.

Why: ``json.loads`` keeps the last value of a repeated key without a word, so
``{"user_id": "a", "item_id": "1", "user_id": "b"}`` logged an interaction for
whichever user came last, and a catalog record naming ``item_id`` twice imported only
the second item. The HTTP API's bodies (``app.api.body``), the dashboard's retrain form
and ``genrec items import`` (``training.data.catalog_file``) read JSON through here, so
all refuse it alike; it lives in ``training`` because ``training`` never imports ``app``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: The longest key an error quotes in full.
KEY_SHOWN = 64


class DuplicateKey(Exception):
    """A JSON object names ``key`` more than once; ``str()`` is the message to show."""

    def __init__(self, key: str) -> None:
        shown = key if len(key) <= KEY_SHOWN else key[:KEY_SHOWN] + "..."
        super().__init__(
            f"key {shown!r} appears more than once in one JSON object; give each key once"
        )
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: the object, or ``DuplicateKey``."""
    made = dict(pairs)
    if len(made) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return made


#: One decoder for every read: ``json.loads(raw, object_pairs_hook=...)`` builds a new
#: ``JSONDecoder`` and scanner per call, which cost a small body more than the hook.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


class NotUtf8(ValueError):
    """Bytes in a Unicode encoding other than UTF-8 (``json.detect_encoding``'s name)."""


#: What ``json.detect_encoding`` calls UTF-8 (with and without a byte-order mark).
_UTF8 = frozenset(("utf-8", "utf-8-sig"))


def loads(raw: str | bytes, utf8_only: bool = False) -> Any:
    """``json.loads`` that refuses a key given twice in one object (``DuplicateKey``); its
    other errors are ``json.loads``' own (bytes decoded as it decodes them).

    ``utf8_only``: bytes in UTF-16 or UTF-32 are ``NotUtf8`` instead of decoded. JSON
    exchanged between systems is UTF-8 (RFC 8259, 8.1), and the HTTP API says so; the
    detection ``json.loads`` does read such a body as if it were fine (files keep it).
    """
    if isinstance(raw, bytes):
        encoding = json.detect_encoding(raw)
        if utf8_only and encoding not in _UTF8:
            raise NotUtf8(encoding)
        raw = raw.decode(encoding, "surrogatepass")
    return _DECODER.decode(raw)


def unreadable_reason(exc: ValueError | RecursionError) -> str:
    """Why ``loads`` could not read the text at all, for the failures that are not a
    ``JSONDecodeError`` (no position): bytes not in a Unicode encoding, nesting deeper
    than Python's recursion allows, an integer longer than Python converts."""
    if isinstance(exc, NotUtf8):
        return f"the bytes are {exc} text; send JSON as UTF-8"
    if isinstance(exc, UnicodeDecodeError):
        byte = exc.object[exc.start : exc.start + 1].hex()
        return (
            f"the bytes are not {exc.encoding} text (byte 0x{byte} at offset {exc.start}); "
            "send JSON as UTF-8"
        )
    if isinstance(exc, RecursionError):
        return f"JSON nested too deeply to read (fewer than {sys.getrecursionlimit():,} levels)"
    if "digits" in str(exc):  # Python's limit on the integers it converts
        return f"a number of more than {sys.get_int_max_str_digits():,} digits"
    return f"not readable as JSON ({exc})"
