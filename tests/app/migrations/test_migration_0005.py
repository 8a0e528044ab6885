"""Migration 0005 is additive (old impressions keep working), keeps at most one
experiment running in the database itself, and downgrades cleanly; on SQLite and on
the real Postgres."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from app.core.db import alembic_config, make_engine, upgrade_database

_EXPERIMENT = (
    "INSERT INTO experiments (name, status, running, control, variants, window_minutes, "
    "mixing_sd, created_at) VALUES (:name, 'running', :running, 'a', '[]', 30, 0.02, "
    "'2026-12-01 00:00:00')"
)


def test_0005_adds_experiments_and_latency_and_downgrades(blank_database_url: str) -> None:
    url = blank_database_url
    upgrade_database(url, "0004")
    engine = make_engine(url)
    with engine.begin() as conn:  # an impression written by the previous code
        conn.execute(
            text(
                "INSERT INTO impressions (id, user_id, kind, items, model, version, created_at) "
                """VALUES ('r1', 'u', 'user', '["1"]', 'ease', '1', '2026-01-01 00:00:00')"""
            )
        )
    upgrade_database(url)
    inspector = inspect(engine)
    columns = {c["name"]: c for c in inspector.get_columns("impressions")}
    assert columns["latency_ms"]["nullable"]
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("impressions")}
    assert indexes["ix_impressions_experiment_variant"] == ["experiment", "variant"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT latency_ms FROM impressions")).scalar_one() is None
    with engine.begin() as conn:
        conn.execute(text(_EXPERIMENT), {"name": "one", "running": True})
        conn.execute(text(_EXPERIMENT), {"name": "old", "running": None})  # stopped: NULL
        conn.execute(text(_EXPERIMENT), {"name": "older", "running": None})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(_EXPERIMENT), {"name": "two", "running": True})
    command.downgrade(alembic_config(url), "0004")  # type: ignore[arg-type]
    inspector = inspect(engine)
    assert "experiments" not in inspector.get_table_names()
    assert "latency_ms" not in {c["name"] for c in inspector.get_columns("impressions")}
    engine.dispose()
