"""Migration 0010 adds ``items.removed_at``: every stored item stays in the catalog (NULL),
a removal written after it is read by a server's poll, and it downgrades cleanly (removed
items come back: the previous code cannot hold them); on SQLite and on the real Postgres."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from sqlalchemy import text

from app.catalog import remove_items
from app.catalog.sync import CatalogSync
from app.core.db import make_sessionmaker, upgrade_database
from app.core.metrics import Metrics
from app.repository import get_item
from app.serving.holder import ModelHolder
from models_store import ModelStore
from tests.app.migrations.migration_steps import PreviousCode, columns, downgrade

_ITEM = (
    "INSERT INTO items (item_id, title, text, attributes, created_at, updated_at, change_epoch) "
    "VALUES (:item_id, NULL, NULL, :attributes, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1)"
)


def test_0010_keeps_the_catalog_and_downgrades(
    blank_database_url: str, tmp_path: Path, previous_code: PreviousCode
) -> None:
    url = blank_database_url
    rows = [{"item_id": f"i{n}", "attributes": json.dumps({"n": n})} for n in range(3)]
    engine = previous_code(url, "0009", _ITEM, rows)  # the previous code's rows
    sessions = make_sessionmaker(engine)
    upgrade_database(url)
    assert "removed_at" in columns(engine, "items")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT removed_at FROM items")).scalars().all()
    assert stored == [None, None, None]  # nothing existing is removed
    holder = ModelHolder(ModelStore(tmp_path / "store"), torch.device("cpu"), Metrics(), "x")
    sync = CatalogSync(sessions, holder, interval_s=60)
    sync.refresh()  # the first read: the whole table
    assert sync.removed.ids == frozenset()
    assert remove_items(sessions, ["i1"]) == {"i1": "removed"}
    sync.refresh()
    assert sync.removed.ids == {"i1"}
    downgrade(url, "0009")
    assert "removed_at" not in columns(engine, "items")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM items")).scalar_one() == 3
    upgrade_database(url)  # and up again: i1 is back in the catalog
    with sessions() as session:
        again = get_item(session, "i1")
    assert again is not None and again.removed_at is None
