"""Repository: batch insert in the caller's transaction, post-cutoff reads in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.repository import NewInteraction, add_interactions, count_interactions, user_interactions

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
