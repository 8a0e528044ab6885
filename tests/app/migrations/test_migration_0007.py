"""Migration 0007 adds the dashboard's revoked sessions and downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from app.core.db import alembic_config, make_engine, upgrade_database
from tests.conftest import POSTGRES_ADMIN_URL, scratch_database


def _check(url: str) -> None:
    upgrade_database(url, "0006")
    upgrade_database(url)
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        columns = {c["name"] for c in inspector.get_columns("dashboard_revoked_sessions")}
        assert columns == {"session_id", "expires_at"}
        indexes = {
            i["name"]: i["column_names"]
            for i in inspector.get_indexes("dashboard_revoked_sessions")
        }
        assert indexes["ix_dashboard_revoked_sessions_expires_at"] == ["expires_at"]
        command.downgrade(alembic_config(url), "0006")  # type: ignore[arg-type]
        assert "dashboard_revoked_sessions" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_0007_on_sqlite(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path}/log.db")


@pytest.mark.usefixtures("postgres_url")  # the service's check: fails under CI when it is down
def test_0007_on_postgres() -> None:
    with scratch_database(POSTGRES_ADMIN_URL, "genrec_migration") as url:
        _check(url)
