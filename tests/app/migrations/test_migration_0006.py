"""Migration 0006 is additive: existing jobs read as retrains, and it downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from app.core.db import upgrade_database
from tests.app.migrations.migration_steps import PreviousCode, columns, downgrade, indexes

_JOB = (
    "INSERT INTO retrain_jobs (model, params, data, promote, trigger, status, "
    "attempts, max_attempts, created_at, updated_at) VALUES ('ease', '{}', 'log', "
    "'auto', 'api', 'queued', 0, 3, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
)


def test_0006_adds_kind_window_and_result_and_downgrades(
    tmp_path: Path, previous_code: PreviousCode
) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    engine = previous_code(url, "0005", _JOB)  # a job written by the previous code
    upgrade_database(url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT kind, search_until, result FROM retrain_jobs")).one()
    assert tuple(row) == ("retrain", None, None)
    assert indexes(engine, "retrain_jobs")["ix_retrain_jobs_kind_status"] == ["kind", "status"]
    downgrade(url, "0005")
    assert not set(columns(engine, "retrain_jobs")) & {"kind", "search_until", "result"}
