"""Engine creation and the Alembic migration (SQLite here; Postgres in the integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError, OperationalError

from app.core.db import DatabaseGuard, DatabaseUnavailable, make_engine, ping, upgrade_database
from tests.manual_clock import ManualClock


def test_upgrade_creates_interactions_with_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/dir/log.db"
    upgrade_database(url)
    upgrade_database(url)  # idempotent: a second run is a no-op
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        columns = {c["name"] for c in inspector.get_columns("interactions")}
        assert columns == {
            *("id", "user_id", "item_id", "rating", "ts", "created_at"),
            *("type", "recommendation_id", "impression_id"),  # migration 0004
        }
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("interactions")}
        assert indexes["ix_interactions_user_id_ts"] == ["user_id", "ts"]
        ping(engine)
    finally:
        engine.dispose()
    assert (tmp_path / "nested" / "dir" / "log.db").exists()


def _fail(error: Exception) -> None:
    raise error


def test_guard_opens_on_unreachable_probes_after_retry_and_closes_on_success() -> None:
    clock = ManualClock(100.0)
    guard = DatabaseGuard(retry_s=0.2, clock=clock)
    down = OperationalError("SELECT 1", {}, Exception("connection refused"))
    with pytest.raises(OperationalError), guard.attempt():
        _fail(down)
    assert guard.is_down
    with pytest.raises(DatabaseUnavailable), guard.attempt():
        pass  # refused without running: the breaker is open
    clock.advance(0.19)
    with pytest.raises(DatabaseUnavailable), guard.attempt():
        pass  # still inside the retry window
    clock.advance(0.02)
    with guard.attempt():
        pass  # the probe runs and succeeds
    assert not guard.is_down


def test_guard_ignores_errors_that_do_not_mean_down() -> None:
    guard = DatabaseGuard(retry_s=60)
    with pytest.raises(IntegrityError), guard.attempt():
        _fail(IntegrityError("INSERT", {}, Exception("duplicate")))
    assert not guard.is_down
