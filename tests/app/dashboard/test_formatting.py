"""The dashboard's value, time and URL filters (``app.dashboard.formatting``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.dashboard.formatting import item_href, show, urlpart, utc


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "–"),
        (True, "yes"),
        (False, "no"),
        (0, "0"),
        (9988, "9988"),
        (9988.0, "9988"),  # a count stored as a float
        (0.5007567767361684, '<span title="0.5007567767361684">0.5008</span>'),
        (701.7695007324219, '<span title="701.7695007324219">701.8</span>'),
        (2.5e-06, "2.5e-06"),
        (123456.789, '<span title="123456.789">123457</span>'),
        (0.25, "0.25"),
        (float("nan"), "NaN"),
        (float("inf"), "∞"),
        ("cpu", "cpu"),
        ("<x>", "&lt;x&gt;"),
        ([], "–"),
        (["Comedy", "<x>"], "Comedy, &lt;x&gt;"),
        ({}, "–"),
    ],
)
def test_show_prints_values_for_people(value: object, shown: str) -> None:
    assert str(show(value)) == shown


def test_show_nests_dicts_as_key_value_lists() -> None:
    losses = {"loss": 701.7695007324219, "beta": 2.5e-06, "flags": {"ok": True, "why": None}}
    html = str(show(losses))
    assert html.startswith('<dl class="kv"><dt>loss</dt><dd><span title="701.7695007324219">')
    assert "<dt>beta</dt><dd>2.5e-06</dd>" in html
    nested = '<dl class="kv"><dt>ok</dt><dd>yes</dd><dt>why</dt><dd>–</dd></dl>'
    assert f"<dt>flags</dt><dd>{nested}" in html
    assert "{" not in html and "'" not in html
    assert str(show({"<k>": "<v>"})) == '<dl class="kv"><dt>&lt;k&gt;</dt><dd>&lt;v&gt;</dd></dl>'


def test_utc_writes_the_zone_whatever_zone_the_moment_came_in() -> None:
    new_york = timezone(timedelta(hours=-5))
    moment = datetime(2026, 12, 6, 17, 8, 34, 120_000, tzinfo=new_york)
    assert utc(moment) == "2026-12-06T22:08:34Z"
    assert utc(moment.astimezone(UTC)) == "2026-12-06T22:08:34Z"
    assert utc(datetime(2026, 12, 6, 22, 8, 34)) == "2026-12-06T22:08:34Z"  # naive: UTC
    assert utc("2026-12-06T22:06:35.798781Z") == "2026-12-06T22:06:35Z"
    assert utc("2026-12-06T17:06:35-05:00") == "2026-12-06T22:06:35Z"
    assert utc(None) == "–"
    assert utc("not a time") == "not a time"


def test_url_parts_escape_every_reserved_character() -> None:
    assert urlpart("a/../b") == "a%2F..%2Fb"
    assert urlpart("x?y#z&w=1+2 %") == "x%3Fy%23z%26w%3D1%2B2%20%25"
    assert item_href("a/../b") == "/dashboard/catalog/items/a%2F..%2Fb"
    assert item_href("⭐") == "/dashboard/catalog/items/%E2%AD%90"
    # Dot segments are rewritten by the browser however they are escaped: linked by query.
    assert item_href("..") == "/dashboard/catalog/item?id=.."
    assert item_href(".") == "/dashboard/catalog/item?id=."
    assert item_href("...") == "/dashboard/catalog/items/..."
