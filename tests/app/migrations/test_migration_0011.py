"""Migration 0011 adds ``erased_users``: the log stays as it is and nobody is erased, an
erasure written after it is read by a server's poll, and it downgrades cleanly (the record
goes, the deleted rows stay deleted); on SQLite and on the real Postgres."""

from __future__ import annotations

from sqlalchemy import text

from app.core.cache import MemoryCache
from app.core.db import make_sessionmaker, upgrade_database
from app.core.metrics import Metrics
from app.serving.erased import ErasedUsers
from app.users import ErasureSync, erase_users
from tests.app.migrations.migration_steps import PreviousCode, columns, downgrade, table_names

_ROW = (
    "INSERT INTO interactions (user_id, item_id, rating, ts, created_at) "
    "VALUES (:user_id, :item_id, 4, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
)


def test_0011_keeps_the_log_and_downgrades(
    blank_database_url: str, previous_code: PreviousCode
) -> None:
    url = blank_database_url
    rows = [{"user_id": f"u{n % 2}", "item_id": str(n)} for n in range(4)]
    engine = previous_code(url, "0010", _ROW, rows)  # the previous code's rows
    sessions = make_sessionmaker(engine)
    upgrade_database(url)
    assert set(columns(engine, "erased_users")) == {"user_id", "erased_at", "epoch"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM erased_users")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM interactions")).scalar_one() == 4
    erased = ErasedUsers()
    sync = ErasureSync(sessions, erased, MemoryCache(Metrics()), interval_s=60)
    assert sync.refresh() == 0 and len(erased) == 0
    assert erase_users(sessions, ["u1"]).deleted == {"interactions": 2, "impressions": 0}
    assert sync.refresh() == 1 and "u1" in erased and "u0" not in erased
    downgrade(url, "0010")
    assert "erased_users" not in table_names(engine)
    with engine.connect() as conn:
        users = conn.execute(text("SELECT DISTINCT user_id FROM interactions")).scalars().all()
    assert users == ["u0"]  # the erased rows stay deleted
    upgrade_database(url)  # and up again: an empty record
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM erased_users")).scalar_one() == 0
