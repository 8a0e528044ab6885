"""Migration 0004 is additive: old rows keep working, and it downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text

from app.core.db import alembic_config, make_engine, upgrade_database


def test_0004_adds_a_table_and_nullable_columns_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    upgrade_database(url, "0003")
    engine = make_engine(url)
    with engine.begin() as conn:  # a row written by the previous code
        conn.execute(
            text(
                "INSERT INTO interactions (user_id, item_id, rating, ts, created_at) "
                "VALUES ('u', 'i', 4.0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    upgrade_database(url)
    inspector = inspect(engine)
    columns = {c["name"]: c for c in inspector.get_columns("interactions")}
    assert all(columns[c]["nullable"] for c in ("type", "recommendation_id", "impression_id"))
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("impressions")}
    assert indexes["ix_impressions_user_id_created_at"] == ["user_id", "created_at"]
    with engine.connect() as conn:
        row = conn.execute(text("SELECT user_id, type, impression_id FROM interactions")).one()
    assert tuple(row) == ("u", None, None)
    command.downgrade(alembic_config(url), "0003")  # type: ignore[arg-type]
    assert "impressions" not in inspect(engine).get_table_names()
    assert "type" not in {c["name"] for c in inspect(engine).get_columns("interactions")}
    engine.dispose()
