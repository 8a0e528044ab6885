"""Stored text read back as text every answer can encode: lone surrogates become U+FFFD.

Why: the API refuses a lone UTF-16 surrogate (``"\\ud800"`` in JSON) in every field
(``app.schemas_fields``), but rows written before it did, or by other tools, still
hold them, and a string holding one cannot be encoded as UTF-8 for a JSON answer
or an HTML page: ``GET /v1/items/{id}`` of such an item was a 500, and every list
showing its title with it. What each backend can hold (checked, Postgres 15 and
SQLite 3):

* a JSON column (``items.attributes``, job ``params``): the escape ``\\ud800`` in
  both (Postgres' ``json`` type keeps the text as written; ``jsonb`` would refuse
  it), which ``json.loads`` turns into a lone surrogate;
* a text column (titles, texts, ids): never in Postgres (its UTF-8 check refuses
  the bytes, psycopg refuses to encode the string); in SQLite only as bytes that
  are not UTF-8, written by another client (the ``sqlite3`` module refuses to
  encode such a string), which the module then cannot decode: a 503
  ``database_unavailable`` on every read that met the row;
* a model version's ``items.json`` (training titles): the escape, as JSON.

Each is read here with the character replaced (U+FFFD, what a decoder writes for
bytes it cannot read): the item is served, its other fields intact, and the
replacement shows where the stored text was broken. A write of the text is still
refused (422) until the client sends valid text.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
#: A JSON ``\\uXXXX`` escape of a surrogate (a pair's halves too: ``json.loads`` joins those).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_ESCAPE_TEXT = re.compile(_SURROGATE_ESCAPE.pattern.decode())


def encodable(value: str) -> str:
    """``value`` with each lone surrogate replaced by U+FFFD (ASCII passes at once)."""
    if value.isascii():
        return value
    return _SURROGATE.sub("\ufffd", value)


def encodable_json(value: Any) -> Any:
    """A decoded JSON value with every string (object keys too) made ``encodable``."""
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, dict):
        return {encodable_json(k): encodable_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encodable_json(v) for v in value]
    return value


def loads(raw: str | bytes | bytearray) -> Any:
    """``json.loads`` for the database engines' JSON columns (``app.core.db``): a
    surrogate escape makes the strings be checked, its absence costs one search."""
    value = json.loads(raw)
    if isinstance(raw, str):
        escaped = _SURROGATE_ESCAPE_TEXT.search(raw) is not None
    else:
        escaped = _SURROGATE_ESCAPE.search(raw) is not None
    return encodable_json(value) if escaped else value


#: Most characters of client input one error message quotes (a key, a value, a filter).
CLIP = 80
#: What ``clip`` writes escaped: C0/C1 controls (line breaks among them), DEL, and the
#: Unicode line and paragraph separators, so that a quote stays on one line.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clip(text: str, limit: int = CLIP) -> str:
    """``text`` as an error message quotes it: on one line and at most ``limit`` characters.

    Why: an error answer echoes what the client sent (an unknown key, a filter, a
    header) to say what is wrong; echoed whole, a 1 MB key made a 2 MB 422, and a
    filter pasted from a config file split the message over several lines. Line
    breaks and other control characters are written as Python escapes them
    (``\\n``, ``\\x00``, ``\\u2028``); past ``limit`` the text ends in "...". Only
    the first ``limit + 1`` characters are looked at, whatever the input's size.
    """
    head = _UNPRINTABLE.sub(_escaped, text[: limit + 1])
    if len(text) <= limit and len(head) <= limit:
        return head
    return head[: limit - 3] + "..."


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def decode_sqlite_text(raw: bytes) -> str:
    """SQLite's ``text_factory``: UTF-8, with bytes that are not UTF-8 as U+FFFD."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")
