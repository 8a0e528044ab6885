"""Attribution and experiment counting when an impression is written mid-batch.

An impression leaves the recorder's queue once its batch is committed. If that
happens between attribution's database read and its look at the queue, the
impression must still be found (it once was not: the event was logged
unattributed and its experiment click uncounted; the dashboard experiment test
caught it in CI). The tests write the queued impressions right after each of
attribution's database reads, on both backends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import app.serving.attribution as attribution
from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.core.metrics import Metrics
from app.experiments.counting import experiment_events
from app.repository import NewInteraction
from app.serving.attribution import Attributor
from app.serving.impressions import ImpressionRecorder


@pytest.fixture(params=["postgres", "sqlite"])
def sessions(request: pytest.FixtureRequest) -> Iterator[sessionmaker[Session]]:
    url = request.getfixturevalue(f"{request.param}_url")
    upgrade_database(url)
    engine: Engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _written_after_first_look(
    monkeypatch: pytest.MonkeyPatch, recorder: ImpressionRecorder
) -> list[int]:
    """Commit the recorder's queue right after attribution's first look, at the queue or
    at the database, whichever comes first: the impression is then written between
    its two looks, whatever their order."""
    flushed: list[int] = []

    def then_flush(look: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any) -> Any:
            result = look(*args)
            if not flushed:
                flushed.append(recorder.flush())
            return result

        return wrapped

    for name in ("existing_impressions", "impressions_in_window"):
        monkeypatch.setattr(attribution, name, then_flush(getattr(attribution, name)))
    for name in ("pending", "pending_for_users"):
        monkeypatch.setattr(recorder, name, then_flush(getattr(recorder, name)))
    return flushed


@pytest.mark.parametrize("explicit", [True, False], ids=["recommendation_id", "window"])
def test_an_impression_written_during_attribution_is_attributed_and_counted(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, explicit: bool
) -> None:
    recorder = ImpressionRecorder(sessions, Metrics())  # no thread: flushed by the reads
    user = f"attr-{uuid.uuid4().hex[:8]}"
    rec_id = recorder.record(
        user, "user", ["i1", "i2"], "ease", "v1", experiment="ab", variant="ease"
    )
    event = NewInteraction(
        user, "i2", None, datetime.now(UTC) + timedelta(seconds=1), type="click",
        recommendation_id=rec_id if explicit else None,
    )  # fmt: skip
    flushed = _written_after_first_look(monkeypatch, recorder)
    attributor = Attributor(recorder, window_minutes=30, weights={"click": 1.0})

    with session_scope(sessions) as session:
        attributed = attributor.attribute(session, [event])
        counted = experiment_events(session, attributed.queued, attributed.rows, {"click"}, set())

    assert sum(flushed) == 1  # the impression was written during attribution
    assert recorder.pending(rec_id) is None
    assert [row.impression_id for row in attributed.rows] == [rec_id]
    assert counted == [("ab", "ease", "ease", "v1", "click")]


def test_an_impression_already_written_is_found_in_the_database(
    sessions: sessionmaker[Session],
) -> None:
    recorder = ImpressionRecorder(sessions, Metrics())
    user = f"attr-{uuid.uuid4().hex[:8]}"
    rec_id = recorder.record(user, "user", ["i1"], "ease", "v1", experiment="ab", variant="ease")
    assert recorder.flush() == 1
    event = NewInteraction(
        user, "i1", None, datetime.now(UTC), type="click", recommendation_id=rec_id
    )
    attributor = Attributor(recorder, window_minutes=30, weights={"click": 1.0})

    with session_scope(sessions) as session:
        attributed = attributor.attribute(session, [event])
        counted = experiment_events(session, attributed.queued, attributed.rows, {"click"}, set())

    assert attributed.queued == {}
    assert [row.impression_id for row in attributed.rows] == [rec_id]
    assert counted == [("ab", "ease", "ease", "v1", "click")]
