"""``app.core.text``: stored text read back encodable."""

from __future__ import annotations

from app.core.text import decode_sqlite_text, encodable, encodable_json, loads


def test_lone_surrogates_become_replacement_characters_and_the_rest_stays() -> None:
    assert encodable("plain") == "plain"
    assert encodable("caf\u00e9 \ud800 \U0001f600 \udfff") == "caf\u00e9 \ufffd \U0001f600 \ufffd"
    value = {"k\udc00": ["a\ud801", 1, None, {"n": "\ud802"}], "ok": True}
    assert encodable_json(value) == {"k\ufffd": ["a\ufffd", 1, None, {"n": "\ufffd"}], "ok": True}


def test_json_columns_are_read_with_lone_surrogate_escapes_replaced() -> None:
    assert loads('{"a": "x\\ud800"}') == {"a": "x\ufffd"}
    assert loads(b'{"a": "x\\uD800"}') == {"a": "x\ufffd"}
    assert loads('{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}  # a pair is one character
    assert loads('{"a": "\\\\ud800"}') == {"a": "\\ud800"}  # an escaped backslash, not an escape


def test_sqlite_text_that_is_not_utf8_is_decoded_with_replacement() -> None:
    assert decode_sqlite_text("caf\u00e9".encode()) == "caf\u00e9"
    assert decode_sqlite_text(b"A\xed\xa0\x80") == "A\ufffd\ufffd\ufffd"
