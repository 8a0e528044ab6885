"""Migration 0008 records the kind of every attribute the stored catalog holds (across
pages of items), keeps an attribute that already holds two kinds writable with either,
adds the impressions' nullable ``session_id``, and downgrades cleanly; on SQLite and on
the real Postgres."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from app.catalog.items import CatalogError, save_items
from app.core.db import make_sessionmaker, upgrade_database
from app.repository import NewItem
from tests.app.migrations.migration_steps import PreviousCode, columns, downgrade, table_names

_ITEM = (
    "INSERT INTO items (item_id, title, text, attributes, created_at, updated_at) "
    "VALUES (:item_id, NULL, NULL, :attributes, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
)

_IMPRESSION = (
    "INSERT INTO impressions (id, user_id, kind, items, model, version, created_at) "
    """VALUES ('r1', 'u', 'ad_hoc', '["1"]', 'ease', '1', '2026-01-01 00:00:00')"""
)


def test_0008_fills_the_kinds_from_the_stored_catalog_and_downgrades(
    blank_database_url: str, previous_code: PreviousCode
) -> None:
    url = blank_database_url
    # Items written by the previous code: 2,500 of them, so the fill reads several pages;
    # the last one alone holds "late", and two replicas gave "grade" two kinds.
    rows = [{"item_id": f"{n:05d}", "attributes": json.dumps({"year": n})} for n in range(2500)]
    rows[-1] = {"item_id": "02499", "attributes": json.dumps({"late": [True, None]})}
    rows += [
        {"item_id": "a", "attributes": json.dumps({"grade": 5, "genres": ["Drama"], "z": None})},
        {"item_id": "b", "attributes": json.dumps({"grade": "red", "empty": [], "x" * 300: 1})},
    ]
    engine = previous_code(url, "0007", _ITEM, rows)
    with engine.begin() as conn:
        conn.execute(text(_IMPRESSION))
    upgrade_database(url)
    with engine.connect() as conn:
        old = conn.execute(text("SELECT user_id, session_id FROM impressions")).one()
    assert tuple(old) == ("u", None)
    with engine.connect() as conn:
        kinds = dict(conn.execute(text("SELECT name, kind FROM attribute_kinds")).all())
    assert kinds == {
        "year": "number",
        "late": "bool",
        "genres": "string",
        "grade": "number string",
    }
    sessions = make_sessionmaker(engine)
    with pytest.raises(CatalogError, match="attribute 'year' is a string here"):
        save_items(sessions, [NewItem("c", None, None, {"year": "1995"})])
    assert save_items(sessions, [NewItem("b", None, None, {"grade": "blue"})]) == {"b": "updated"}
    assert save_items(sessions, [NewItem("c", None, None, {"grade": 4})]) == {"c": "created"}
    downgrade(url, "0007")
    assert "attribute_kinds" not in table_names(engine)
    assert "session_id" not in columns(engine, "impressions")
