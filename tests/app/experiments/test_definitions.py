"""Experiment definitions against the database: what a stop does when another stop of
the same experiment gets in first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.db_models import Experiment
from app.experiments import definitions
from app.experiments.definitions import ExperimentConflict

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_of_two_stops_at_once_the_second_is_a_conflict(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """On SQLite the row lock of ``SELECT ... FOR UPDATE`` does not exist: both stops read
    "running", both answered 200 and the second overwrote the first's ``stopped_at``.
    Another stop is run here between the first one's read and its write."""
    with sessions.begin() as session:
        session.add(
            Experiment(
                name="ab1",
                status="running",
                running=True,
                control="a",
                variants=[],
                window_minutes=30.0,
                mixing_sd=0.02,
                created_at=T0,
                stopped_at=None,
            )
        )
    other_stop: list[definitions.ExperimentDef] = []
    started: list[bool] = []

    def stop_first(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE EXPERIMENTS") and not started:
            started.append(True)
            other_stop.append(definitions.stop(sessions, "ab1", now=T0.replace(hour=13)))

    event.listen(engine, "before_cursor_execute", stop_first)
    try:
        with pytest.raises(ExperimentConflict, match="already stopped"):
            definitions.stop(sessions, "ab1", now=T0.replace(hour=14))
    finally:
        event.remove(engine, "before_cursor_execute", stop_first)
    assert [e.status for e in other_stop] == ["stopped"]
    stored = definitions.get(sessions, "ab1")
    assert (stored.status, stored.stopped_at) == ("stopped", T0.replace(hour=13))
