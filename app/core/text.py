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


def decode_sqlite_text(raw: bytes) -> str:
    """SQLite's ``text_factory``: UTF-8, with bytes that are not UTF-8 as U+FFFD."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")
