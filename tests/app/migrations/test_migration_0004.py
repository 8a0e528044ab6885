"""Migration 0004 is additive: old rows keep working, and it downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from app.core.db import upgrade_database
from tests.app.migrations.migration_steps import (
    PreviousCode,
    columns,
    downgrade,
    indexes,
    table_names,
)

_ROW = (
    "INSERT INTO interactions (user_id, item_id, rating, ts, created_at) "
    "VALUES ('u', 'i', 4.0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
)


def test_0004_adds_a_table_and_nullable_columns_and_downgrades(
    tmp_path: Path, previous_code: PreviousCode
) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    engine = previous_code(url, "0003", _ROW)  # a row written by the previous code
    upgrade_database(url)
    added = columns(engine, "interactions")
    assert all(added[c]["nullable"] for c in ("type", "recommendation_id", "impression_id"))
    assert indexes(engine, "impressions")["ix_impressions_user_id_created_at"] == [
        "user_id",
        "created_at",
    ]
    with engine.connect() as conn:
        row = conn.execute(text("SELECT user_id, type, impression_id FROM interactions")).one()
    assert tuple(row) == ("u", None, None)
    downgrade(url, "0003")
    assert "impressions" not in table_names(engine)
    assert "type" not in columns(engine, "interactions")
