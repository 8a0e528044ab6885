"""Migration 0007 adds the dashboard's revoked sessions and downgrades cleanly; on SQLite
and on the real Postgres."""

from __future__ import annotations

from app.core.db import upgrade_database
from tests.app.migrations.migration_steps import (
    PreviousCode,
    columns,
    downgrade,
    indexes,
    table_names,
)


def test_0007_adds_the_revoked_sessions_and_downgrades(
    blank_database_url: str, previous_code: PreviousCode
) -> None:
    url = blank_database_url
    engine = previous_code(url, "0006")
    upgrade_database(url)
    assert set(columns(engine, "dashboard_revoked_sessions")) == {"session_id", "expires_at"}
    revoked = indexes(engine, "dashboard_revoked_sessions")
    assert revoked["ix_dashboard_revoked_sessions_expires_at"] == ["expires_at"]
    downgrade(url, "0006")
    assert "dashboard_revoked_sessions" not in table_names(engine)
