"""The running experiment's poll outlives a poll that fails in an unforeseen way."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.experiments import definitions
from app.experiments.assignment import ExperimentRegistry
from app.experiments.definitions import ExperimentDef

#: Only waited in full by a test that is about to fail.
PATIENCE_S = 30.0


def test_a_poll_that_raises_something_unforeseen_does_not_end_the_polling(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row this release cannot read (written by another release) raised out of the
    thread, not a database error: the thread died and the replica kept the experiment
    it knew until restarted."""
    calls: list[int] = []
    polled_again = threading.Event()

    def running(session: Session) -> ExperimentDef | None:
        calls.append(1)
        if len(calls) == 2:  # the thread's first poll (the first read is ``start``'s)
            raise KeyError("variants")
        if len(calls) >= 3:
            polled_again.set()
        return None

    monkeypatch.setattr(definitions, "running", running)
    registry = ExperimentRegistry(sessions, refresh_s=0.01)
    registry.start()
    try:
        assert polled_again.wait(PATIENCE_S), "the poll thread ended at the failure"
    finally:
        registry.stop()


def test_a_new_experiment_s_pins_are_announced_before_requests_are_assigned_to_it(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``on_change`` tells the model holder which versions to keep pinned; requests
    assigned to a variant ask the holder for its version, and the holder refuses a
    version no experiment it was told of pins. Announced after the experiment was
    published, a request assigned in between was refused (and fell back)."""
    from datetime import UTC, datetime

    from app.experiments.definitions import Variant

    started = ExperimentDef(
        name="e",
        status="running",
        control="a",
        variants=(Variant("a", "ease", None, 1.0), Variant("b", "ease", "3", 1.0)),
        window_minutes=30.0,
        mixing_sd=0.02,
        created_at=datetime.now(UTC),
        stopped_at=None,
    )
    monkeypatch.setattr(definitions, "running", lambda session: started)
    seen_at_change: list[ExperimentDef | None] = []
    registry = ExperimentRegistry(sessions, refresh_s=60.0)
    registry.on_change = lambda running: seen_at_change.append(registry.current)
    registry.refresh()
    assert seen_at_change == [None] and registry.current == started
    monkeypatch.setattr(definitions, "running", lambda session: None)  # stopped
    registry.refresh()
    assert seen_at_change == [None, started] and registry.current is None
