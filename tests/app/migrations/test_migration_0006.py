"""Migration 0006 is additive: existing jobs read as retrains, and it downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text

from app.core.db import alembic_config, make_engine, upgrade_database


def test_0006_adds_kind_window_and_result_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    upgrade_database(url, "0005")
    engine = make_engine(url)
    with engine.begin() as conn:  # a job written by the previous code
        conn.execute(
            text(
                "INSERT INTO retrain_jobs (model, params, data, promote, trigger, status, "
                "attempts, max_attempts, created_at, updated_at) VALUES ('ease', '{}', 'log', "
                "'auto', 'api', 'queued', 0, 3, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    upgrade_database(url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT kind, search_until, result FROM retrain_jobs")).one()
    assert tuple(row) == ("retrain", None, None)
    indexes = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("retrain_jobs")}
    assert indexes["ix_retrain_jobs_kind_status"] == ["kind", "status"]
    command.downgrade(alembic_config(url), "0005")  # type: ignore[arg-type]
    columns = {c["name"] for c in inspect(engine).get_columns("retrain_jobs")}
    assert not columns & {"kind", "search_until", "result"}
    engine.dispose()
