"""Migration 0009 adds the catalog's change counter: existing items get epoch 1 (so a
server's poll, which reads above the counter, starts past them), the next write takes
epoch 2, an item written by the previous code (no epoch) is still read at startup, and
it downgrades cleanly; on SQLite and on the real Postgres."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from sqlalchemy import text

from app.catalog.items import save_items
from app.catalog.sync import CatalogSync
from app.core.db import make_sessionmaker, upgrade_database
from app.core.metrics import Metrics
from app.repository import NewItem, catalog_epoch, items_changed_since
from app.serving.holder import ModelHolder
from models_store import ModelStore
from tests.app.migrations.migration_steps import (
    PreviousCode,
    columns,
    downgrade,
    indexes,
    table_names,
)

_ITEM = (
    "INSERT INTO items (item_id, title, text, attributes, created_at, updated_at) "
    "VALUES (:item_id, NULL, NULL, :attributes, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
)


def test_0009_stamps_the_stored_catalog_and_downgrades(
    blank_database_url: str, tmp_path: Path, previous_code: PreviousCode
) -> None:
    url = blank_database_url
    rows = [{"item_id": f"{n:04d}", "attributes": json.dumps({"year": n})} for n in range(1500)]
    engine = previous_code(url, "0008", _ITEM, rows)
    upgrade_database(url)
    with engine.connect() as conn:
        stamped = conn.execute(text("SELECT DISTINCT change_epoch FROM items")).scalars().all()
    assert stamped == [1]
    assert "ix_items_change_epoch" in indexes(engine, "items")
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        assert catalog_epoch(session) == 1
        assert items_changed_since(session, 1) == []
    # A replica still on the previous code writes a row without an epoch.
    with engine.begin() as conn:
        conn.execute(text(_ITEM), [{"item_id": "old-code", "attributes": '{"year": 1}'}])
    holder = ModelHolder(ModelStore(tmp_path / "store"), torch.device("cpu"), Metrics(), "convmf")
    sync = CatalogSync(sessions, holder, interval_s=60, page_size=1000)
    sync.refresh()  # the first read: the whole table, by id
    served = sync.attributes.snapshot().items
    assert len(served) == 1501 and served["old-code"] == {"year": 1}
    assert save_items(sessions, [NewItem("0007", None, None, {"year": 2007})]) == {
        "0007": "updated"
    }
    with sessions() as session:
        assert catalog_epoch(session) == 2
        assert [row.item_id for row in items_changed_since(session, 1)] == ["0007"]
    sync.refresh()
    assert sync.attributes.snapshot().items["0007"] == {"year": 2007}
    downgrade(url, "0008")
    assert "catalog_epoch" not in table_names(engine)
    assert "change_epoch" not in columns(engine, "items")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM items")).scalar_one() == 1501
