"""Late attribution on each backend (Postgres and the embedded SQLite): events logged
unattributed because the list they name was not written yet (another replica's queue)
are attributed when it is, by the list's writer or by the event writer's second look,
with the log-time checks, and counted in the list's experiment once; so are positive
events without an id, by the window rule over the lists written by then."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from app.core.db import make_engine, make_sessionmaker, upgrade_database
from app.core.metrics import Metrics
from app.db_models import Interaction
from app.repository import NewInteraction, add_interactions
from app.serving.impressions import ImpressionRecorder
from app.serving.late_attribution import LateAttribution


@pytest.fixture(params=["postgres", "sqlite"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The migrated database on each backend (Postgres: the session's test database)."""
    url = request.getfixturevalue("postgres_url" if request.param == "postgres" else "sqlite_url")
    upgrade_database(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _user() -> str:
    return f"late-{uuid.uuid4().hex[:8]}"


def _log(engine: Engine, *rows: NewInteraction) -> None:
    """Log ``rows`` unattributed, as a replica that could not see their list does."""
    with engine.begin() as conn:
        add_interactions(conn, rows)


def _attributions(engine: Engine, rec_id: str) -> list[tuple[str, str, str | None]]:
    query = (
        select(Interaction.user_id, Interaction.item_id, Interaction.impression_id)
        .where(Interaction.recommendation_id == rec_id)
        .order_by(Interaction.id)
    )
    with engine.connect() as conn:
        return [(u, i, imp) for u, i, imp in conn.execute(query)]


def _clicks(metrics: Metrics) -> float:
    return sum(
        sample.value
        for family in metrics.experiment_clicks.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def _late(metrics: Metrics, by: str) -> float:
    return sum(
        sample.value
        for family in metrics.attribution_late.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["by"] == by
    )


def test_the_list_writer_attributes_the_events_that_waited_for_its_list(engine: Engine) -> None:
    metrics = Metrics()
    late = LateAttribution(engine, metrics, ["click"], ["purchase"])
    recorder = ImpressionRecorder(make_sessionmaker(engine), metrics, after_write=late.written)
    user, owner = _user(), _user()
    mine = recorder.record(user, "user", ["a", "b"], "ease", "1", experiment="x", variant="v")
    owners = recorder.record(owner, "user", ["a"], "ease", "1", experiment="x", variant="v")
    session = recorder.record(None, "ad_hoc", ["c"], "ease", "1", session_id="s1")
    _log(
        engine,
        NewInteraction(user, "a", type="click", recommendation_id=mine),
        NewInteraction(user, "a", type="purchase", recommendation_id=mine),
        NewInteraction(user, "z", type="click", recommendation_id=mine),  # not shown
        NewInteraction(user, "a", type="click", recommendation_id=owners),  # not theirs
        NewInteraction(user, "c", type="click", recommendation_id=session),  # no user's: theirs
    )
    recorder.flush()
    assert _attributions(engine, mine) == [(user, "a", mine), (user, "a", mine), (user, "z", None)]
    assert _attributions(engine, owners) == [(user, "a", None)]
    assert _attributions(engine, session) == [(user, "c", session)]
    assert _late(metrics, "list_writer") == 3.0
    assert _clicks(metrics) == 1.0  # the session's list is in no experiment
    assert metrics.experiment_conversions.labels("x", "v", "ease", "1")._value.get() == 1.0
    assert late.recheck([mine, owners, session]) == 0  # nothing twice
    assert _late(metrics, "event_writer") == 0.0 and _clicks(metrics) == 1.0


def test_the_event_writers_second_look_attributes_what_the_list_writer_missed(
    engine: Engine,
) -> None:
    """The list was written and looked for waiting events before the event's insert
    was committed: only the event's replica, looking again, can attribute it."""
    metrics = Metrics()
    late = LateAttribution(engine, metrics, ["click"], ["purchase"])
    recorder = ImpressionRecorder(make_sessionmaker(engine), metrics, after_write=late.written)
    user = _user()
    rec_id = recorder.record(user, "user", ["a"], "ease", "1", experiment="x", variant="v")
    recorder.flush()  # finds nothing: the event is not in the database yet
    _log(engine, NewInteraction(user, "a", type="click", recommendation_id=rec_id))
    assert _attributions(engine, rec_id) == [(user, "a", None)]
    assert late.recheck([rec_id, "no-such-list"]) == 1
    assert _attributions(engine, rec_id) == [(user, "a", rec_id)]
    assert _late(metrics, "event_writer") == 1.0 and _late(metrics, "list_writer") == 0.0
    assert _clicks(metrics) == 1.0
    assert late.recheck([rec_id]) == 0 and _clicks(metrics) == 1.0


def test_a_failed_look_is_logged_and_counted_never_raised() -> None:
    metrics = Metrics()
    broken = make_engine("sqlite:////nonexistent-dir/none.db")
    late = LateAttribution(broken, metrics, ["click"], ["purchase"])
    assert late.recheck(["some-list"]) == 0
    assert metrics.database_errors.labels(operation="late_attribution")._value.get() == 1.0
    broken.dispose()


# -------------------------------------------------------------------- window events
WEIGHTS = {"click": 1.0, "purchase": 3.0, "dislike": -1.0}


def _window_attributions(engine: Engine, user: str) -> list[tuple[str, str | None]]:
    """(item, impression_id) of ``user``'s events without an id, in log order."""
    query = (
        select(Interaction.item_id, Interaction.impression_id)
        .where(Interaction.user_id == user, Interaction.recommendation_id.is_(None))
        .order_by(Interaction.id)
    )
    with engine.connect() as conn:
        return [(i, imp) for i, imp in conn.execute(query)]


def test_the_list_writer_attributes_window_events_as_the_log_time_rule_would(
    engine: Engine,
) -> None:
    """Positive events without an id, logged unattributed, go to the latest written list
    that showed the item within the window before them; nothing else is touched."""
    metrics = Metrics()
    late = LateAttribution(engine, metrics, ["click"], ["purchase"], 30.0, WEIGHTS)
    recorder = ImpressionRecorder(make_sessionmaker(engine), metrics, after_write=late.written)
    user = _user()
    older = recorder.record(user, "user", ["a", "b"], "ease", "1", experiment="x", variant="v")
    newer = recorder.record(user, "user", ["a", "c"], "ease", "1", experiment="x", variant="w")
    shown_at = datetime.now(UTC)
    after = shown_at + timedelta(seconds=5)
    _log(
        engine,
        NewInteraction(user, "a", ts=after, type="click"),  # both showed it: the newer
        NewInteraction(user, "b", ts=after, type="purchase"),  # only the older did
        NewInteraction(user, "b", ts=after, type="click", impression_id="elsewhere"),  # kept
        NewInteraction(user, "z", ts=after, type="click"),  # no list showed it
        NewInteraction(user, "c", ts=after, type="dislike"),  # negative: explicit only
        NewInteraction(user, "c", ts=shown_at - timedelta(minutes=5), type="click"),  # before
        NewInteraction(user, "c", ts=shown_at + timedelta(minutes=31), type="click"),  # too late
    )
    recorder.flush()
    assert _window_attributions(engine, user) == [
        ("a", newer),
        ("b", older),
        ("b", "elsewhere"),
        ("z", None),
        ("c", None),
        ("c", None),
        ("c", None),
    ]
    assert _late(metrics, "list_writer") == 2.0
    assert metrics.attribution_late.labels("list_writer", "window")._value.get() == 2.0
    assert metrics.experiment_clicks.labels("x", "w", "ease", "1")._value.get() == 1.0
    assert metrics.experiment_conversions.labels("x", "v", "ease", "1")._value.get() == 1.0
    # A list stamped after the event answers it neither here nor on a second look,
    # even one stamped on receipt: it may have been served after the event.
    moment = datetime.now(UTC) - timedelta(seconds=1)
    before = NewInteraction(user, "y", ts=moment, type="click", stamped_on_receipt=True)
    _log(engine, before)
    recorder.record(user, "user", ["y"], "ease", "1")
    recorder.flush()
    assert late.recheck([], [before]) == 0
    assert _late(metrics, "list_writer") == 2.0 and _late(metrics, "event_writer") == 0.0
    assert _window_attributions(engine, user)[-1] == ("y", None)


def test_the_event_writers_second_look_attributes_window_events_the_list_writer_missed(
    engine: Engine,
) -> None:
    metrics = Metrics()
    late = LateAttribution(engine, metrics, ["click"], ["purchase"], 30.0, WEIGHTS)
    recorder = ImpressionRecorder(make_sessionmaker(engine), metrics, after_write=late.written)
    user = _user()
    rec_id = recorder.record(user, "user", ["a"], "ease", "1", experiment="x", variant="v")
    recorder.flush()  # finds nothing: the event is not in the database yet
    event = NewInteraction(user, "a", ts=datetime.now(UTC) + timedelta(seconds=1), type="click")
    _log(engine, event)
    assert late.recheck([], [event, NewInteraction(user, "q", ts=event.ts, type="click")]) == 1
    assert _window_attributions(engine, user) == [("a", rec_id)]
    assert _late(metrics, "event_writer") == 1.0 and _clicks(metrics) == 1.0
    assert late.recheck([], [event]) == 0 and _clicks(metrics) == 1.0


def test_no_window_no_window_look() -> None:
    """``GENREC_ATTRIBUTION_WINDOW_MINUTES=0``: events without an id are never
    attributed, late or not (the look would fail on this engine if it ran)."""
    metrics = Metrics()
    broken = make_engine("sqlite:////nonexistent-dir/none.db")
    late = LateAttribution(broken, metrics, ["click"], ["purchase"], 0.0, WEIGHTS)
    event = NewInteraction("u", "a", ts=datetime.now(UTC), type="click")
    assert late.recheck([], [event]) == 0
    assert metrics.database_errors.labels(operation="late_attribution")._value.get() == 0.0
    broken.dispose()
