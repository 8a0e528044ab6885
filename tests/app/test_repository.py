"""Repository: batch insert in the caller's transaction, post-cutoff reads in order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.repository import (
    NewInteraction,
    add_interactions,
    count_interactions,
    user_interactions,
    users_interactions,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_add_and_read_back_in_event_order(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        n = add_interactions(
            s,
            [
                NewInteraction("u1", "b", 4.0, T0 + timedelta(hours=1)),
                NewInteraction("u1", "a", None, T0),
                NewInteraction("u2", "a", 5.0, None),
            ],
        )
    assert n == 3
    with session_scope(sessions) as s:
        rows = user_interactions(s, "u1")
        assert [r.item_id for r in rows] == ["a", "b"]
        assert rows[0].rating is None and rows[1].rating == 4.0
        assert rows[0].ts == T0  # UTC round trip, aware
        assert count_interactions(s) == 3
        assert count_interactions(s, "u2") == 1
        assert user_interactions(s, "u2")[0].ts.tzinfo is not None


def test_after_filters_by_event_or_arrival_time(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        add_interactions(s, [NewInteraction("u", "old", 3.0, T0 - timedelta(days=400))])
    with session_scope(sessions) as s:
        # The event is old but arrived now: a model trained up to T0 never saw it.
        assert [r.item_id for r in user_interactions(s, "u", after=T0)] == ["old"]
        future = datetime.now(UTC) + timedelta(days=1)
        assert user_interactions(s, "u", after=future) == []


def test_failed_unit_of_work_writes_nothing(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), session_scope(sessions) as s:
        add_interactions(s, [NewInteraction("u", "a")])
        raise RuntimeError("boom after flush")
    with session_scope(sessions) as s:
        assert count_interactions(s) == 0


@pytest.fixture(params=["sqlite", "postgres"])
def any_backend(request: pytest.FixtureRequest) -> Iterator[sessionmaker[Session]]:
    """Sessions on SQLite and on the real Postgres (the batch query is hand-built once)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sessions")
        return
    url = request.getfixturevalue("postgres_url")
    upgrade_database(url)
    engine = make_engine(url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def test_batch_read_applies_the_cutoff_to_known_users_only(
    any_backend: sessionmaker[Session],
) -> None:
    tag = uuid.uuid4().hex[:8]  # the Postgres database is shared by the session's tests
    known, also_known, unknown, silent = (f"{tag}-{n}" for n in ("k", "k2", "new", "none"))
    old = T0 - timedelta(days=400)
    with session_scope(any_backend) as s:
        add_interactions(
            s,
            [
                NewInteraction(known, "before", 3.0, old),
                NewInteraction(unknown, "first", None, old),
                NewInteraction(unknown, "second", 5.0, old + timedelta(hours=1)),
                NewInteraction(also_known, "x", 1.0, old),
            ],
        )
    future = datetime.now(UTC) + timedelta(days=1)
    with session_scope(any_backend) as s:
        # Arrival time counts: every row arrived now, after a T0 cutoff.
        logs = users_interactions(s, [known, also_known, silent], T0, [unknown])
        assert {u: [r.item_id for r in rows] for u, rows in logs.items()} == {
            known: ["before"],
            also_known: ["x"],
            unknown: ["first", "second"],
        }
        assert logs[unknown][1].rating == 5.0 and logs[unknown][0].ts.tzinfo is not None
        # A cutoff after everything: known users get nothing, unknown users their whole log.
        later = users_interactions(s, [known, known], future, [unknown])
        assert list(later) == [unknown] and len(later[unknown]) == 2
        assert users_interactions(s, [known], None) == {known: logs[known]}
        assert users_interactions(s, [], future, []) == {}
