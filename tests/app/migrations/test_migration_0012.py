"""Migration 0012 adds the job list's indexes: existing jobs stay and page in order, the
query plan uses the new index, and it downgrades cleanly; on SQLite and on the real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, bindparam, text

from app.core.db import make_engine, make_sessionmaker, upgrade_database
from app.retrain import lifecycle
from app.retrain.job_cursor import JobCursor
from tests.app.migrations.migration_steps import PreviousCode, downgrade, indexes

_JOB = text(
    "INSERT INTO retrain_jobs (kind, model, params, data, promote, trigger, status, attempts, "
    "max_attempts, created_at, updated_at) VALUES (:kind, 'ease', '{}', 'log', 'auto', 'api', "
    "'succeeded', 1, 3, :at, :at)"
).bindparams(bindparam("at", type_=DateTime(timezone=True)))  # as the ORM writes it
AT = datetime(2026, 1, 1, tzinfo=UTC)
_NEW = {"ix_retrain_jobs_created_at_id", "ix_retrain_jobs_kind_created_at_id"}


def _indexes(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(indexes(engine, "retrain_jobs"))
    finally:
        engine.dispose()


def test_0012_indexes_the_job_list_and_downgrades(
    blank_database_url: str, previous_code: PreviousCode
) -> None:
    url = blank_database_url
    # the previous code's jobs, all recorded at one moment
    rows = [{"kind": k, "at": AT} for k in ("retrain", "tune", "retrain")]
    engine = previous_code(url, "0011", _JOB, rows)
    assert not _NEW & _indexes(url)
    upgrade_database(url)
    assert _indexes(url) >= _NEW
    sessions = make_sessionmaker(engine)
    jobs = lifecycle.list_jobs(sessions, limit=2)
    assert [job.id for job in jobs] == [3, 2]  # a tie on created_at: by id
    cursor = JobCursor(jobs[-1].created_at, jobs[-1].id)
    assert [job.id for job in lifecycle.list_jobs(sessions, after=cursor)] == [1]
    if engine.dialect.name == "sqlite":  # Postgres picks by its statistics; SQLite by shape
        query = (
            "EXPLAIN QUERY PLAN SELECT id FROM retrain_jobs "
            "WHERE (created_at, id) < ('2026-01-02', 9) ORDER BY created_at DESC, id DESC"
        )
        with engine.connect() as conn:
            plan = " ".join(str(row[-1]) for row in conn.execute(text(query)))
        assert "ix_retrain_jobs_created_at_id" in plan and "TEMP B-TREE" not in plan
    engine.dispose()
    downgrade(url, "0011")
    assert not _NEW & _indexes(url)
    upgrade_database(url)
    assert _indexes(url) >= _NEW
