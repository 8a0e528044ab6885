"""Migration 0005 is additive (old impressions keep working), keeps at most one
experiment running in the database itself, and downgrades cleanly; on SQLite and on
the real Postgres."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.core.db import upgrade_database
from tests.app.migrations.migration_steps import (
    PreviousCode,
    columns,
    downgrade,
    indexes,
    table_names,
)

_IMPRESSION = (
    "INSERT INTO impressions (id, user_id, kind, items, model, version, created_at) "
    """VALUES ('r1', 'u', 'user', '["1"]', 'ease', '1', '2026-01-01 00:00:00')"""
)
_EXPERIMENT = (
    "INSERT INTO experiments (name, status, running, control, variants, window_minutes, "
    "mixing_sd, created_at) VALUES (:name, 'running', :running, 'a', '[]', 30, 0.02, "
    "'2026-12-01 00:00:00')"
)


def test_0005_adds_experiments_and_latency_and_downgrades(
    blank_database_url: str, previous_code: PreviousCode
) -> None:
    url = blank_database_url
    engine = previous_code(url, "0004", _IMPRESSION)  # written by the previous code
    upgrade_database(url)
    assert columns(engine, "impressions")["latency_ms"]["nullable"]
    assert indexes(engine, "impressions")["ix_impressions_experiment_variant"] == [
        "experiment",
        "variant",
    ]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT latency_ms FROM impressions")).scalar_one() is None
    with engine.begin() as conn:
        conn.execute(text(_EXPERIMENT), {"name": "one", "running": True})
        conn.execute(text(_EXPERIMENT), {"name": "old", "running": None})  # stopped: NULL
        conn.execute(text(_EXPERIMENT), {"name": "older", "running": None})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(_EXPERIMENT), {"name": "two", "running": True})
    downgrade(url, "0004")
    assert "experiments" not in table_names(engine)
    assert "latency_ms" not in columns(engine, "impressions")
