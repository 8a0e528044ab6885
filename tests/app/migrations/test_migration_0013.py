"""Migration 0013 adds the partial index of the events waiting for their list: an
event the previous code logged unattributed is in it and late attribution's query
reads it through the index; it downgrades cleanly; on SQLite and on the real Postgres."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from app.core.db import make_engine, upgrade_database
from app.repository import _WAITING_QUERY, _WAITING_SQLITE, waiting_interactions
from tests.app.migrations.migration_steps import PreviousCode, downgrade, indexes

_EVENT = text(
    "INSERT INTO interactions (user_id, item_id, ts, created_at, type, recommendation_id, "
    "impression_id) VALUES (:user, :item, '2026-12-07 12:00:00', '2026-12-07 12:00:00', "
    "'click', :rec_id, :impression_id)"
)
ROWS = [
    {"user": "u1", "item": "a", "rec_id": "list-1", "impression_id": None},  # waiting
    {"user": "u1", "item": "b", "rec_id": "list-2", "impression_id": "list-2"},  # attributed
    *[  # events that name no list: most of a log, and none of the index
        {"user": "u2", "item": str(n), "rec_id": None, "impression_id": None} for n in range(2000)
    ],
]
NAME = "ix_interactions_waiting"


def _has_index(url: str) -> bool:
    engine = make_engine(url)
    try:
        return NAME in indexes(engine, "interactions")
    finally:
        engine.dispose()


def _plan(conn: Connection) -> str:
    """The query plan of late attribution's read of the waiting events."""
    statement = _WAITING_QUERY if conn.dialect.name == "postgresql" else _WAITING_SQLITE
    literal = {"literal_binds": True, "render_postcompile": True}
    query = statement.params(ids=["list-1", "list-2"])
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs=literal))
    if conn.dialect.name == "sqlite":
        return " ".join(str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    conn.execute(text("ANALYZE interactions"))  # as autovacuum would: the plan by statistics
    return " ".join(str(row[0]) for row in conn.execute(text(f"EXPLAIN {sql}")))


def test_0013_indexes_the_waiting_events_and_downgrades(
    blank_database_url: str, previous_code: PreviousCode
) -> None:
    url = blank_database_url
    engine: Engine = previous_code(url, "0012", _EVENT, ROWS)
    assert not _has_index(url)
    upgrade_database(url)
    assert _has_index(url)
    with engine.begin() as conn:
        waiting = waiting_interactions(conn, ["list-1", "list-2"])
        assert [(row.item_id, row.recommendation_id) for _, row in waiting] == [("a", "list-1")]
        assert NAME in _plan(conn)
    engine.dispose()
    downgrade(url, "0012")
    assert not _has_index(url)
    upgrade_database(url)
    assert _has_index(url)
