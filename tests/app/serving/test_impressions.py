"""The impression recorder against the real Postgres: batches, one INSERT per table per
batch, a full queue drops and counts, shutdown flushes, retention deletes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import make_engine, make_sessionmaker, upgrade_database
from app.core.metrics import Metrics
from app.db_models import Experiment, Impression
from app.serving.impression_retention import ImpressionRetention
from app.serving.impressions import ImpressionRecorder
from tests.manual_clock import ManualClock

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["postgres", "sqlite"])
def pg_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The migrated database on each backend (Postgres: the session's test database)."""
    url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgres"
        else request.getfixturevalue("sqlite_url")
    )
    upgrade_database(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_sessions(pg_engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(pg_engine)


def _writes(engine: Engine) -> list[tuple[str, bool]]:
    """Every INSERT (or WITH ... INSERT) the engine runs from now on: (first table
    written, executemany), one entry per execution."""
    seen: list[tuple[str, bool]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        words = statement.split()
        if words[0].upper() in ("INSERT", "WITH"):
            seen.append((words[words.index("INTO") + 1], executemany))

    return seen


def _user() -> str:
    return f"imp-{uuid.uuid4().hex[:8]}"


def _count(sessions: sessionmaker[Session], user_id: str) -> int:
    with sessions() as session:
        query = select(func.count()).select_from(Impression).where(Impression.user_id == user_id)
        return int(session.execute(query).scalar_one())


def test_batches_are_written_with_one_insert_per_table(
    pg_engine: Engine, pg_sessions: sessionmaker[Session]
) -> None:
    metrics = Metrics()
    recorder = ImpressionRecorder(pg_sessions, metrics, batch_max=10, clock=ManualClock(T0))
    user = _user()
    ids = [recorder.record(user, "user", [f"i{n}", f"j{n}"], "m", "1") for n in range(25)]
    writes = _writes(pg_engine)
    assert recorder.flush() == 25
    # 3 batches (10 + 10 + 5), each one statement whatever its size (not an executemany).
    assert writes == [("impressions", False)] * 3
    assert metrics.impressions_written._value.get() == 25
    with pg_sessions() as session:
        rows = {r.id: r for r in session.scalars(select(Impression).where(Impression.id.in_(ids)))}
        assert rows[ids[7]].items == ["i7", "j7"]
        assert (rows[ids[7]].model, rows[ids[7]].version, rows[ids[7]].kind) == ("m", "1", "user")
        assert rows[ids[7]].experiment is None and rows[ids[7]].variant is None
        assert rows[ids[7]].created_at.replace(tzinfo=UTC) == T0
    assert recorder.pending(ids[0]) is None  # written: no longer held in memory


def test_a_full_queue_drops_new_impressions_and_counts_them(
    pg_sessions: sessionmaker[Session],
) -> None:
    metrics = Metrics()
    recorder = ImpressionRecorder(pg_sessions, metrics, queue_size=3)
    user = _user()
    ids = [recorder.record(user, "user", ["1"], "m", "1") for _ in range(5)]
    assert len(set(ids)) == 5  # every response still gets its id
    assert metrics.impressions_dropped.labels(reason="queue_full")._value.get() == 2
    assert recorder.flush() == 3
    assert _count(pg_sessions, user) == 3


def test_the_writer_thread_writes_in_the_background_and_stop_flushes(
    pg_sessions: sessionmaker[Session],
) -> None:
    # flush_s=60: the running writer holds its first impression waiting for the batch
    # to fill, so what is written after stop() was written by the shutdown flush.
    recorder = ImpressionRecorder(pg_sessions, Metrics(), batch_max=100, flush_s=60)
    recorder.start()
    user = _user()
    for _ in range(4):
        recorder.record(user, "user", ["1", "2"], "m", "1")
    assert _count(pg_sessions, user) == 0
    recorder.stop()
    assert _count(pg_sessions, user) == 4


def test_disabled_recorder_gives_ids_and_records_nothing(
    pg_sessions: sessionmaker[Session],
) -> None:
    recorder = ImpressionRecorder(pg_sessions, Metrics(), enabled=False)
    user = _user()
    rec_id = recorder.record(user, "user", ["1"], "m", "1")
    assert len(rec_id) == 36 and recorder.pending(rec_id) is None
    assert recorder.flush() == 0 and _count(pg_sessions, user) == 0


def test_recent_items_see_queued_and_written_impressions(
    pg_sessions: sessionmaker[Session],
) -> None:
    clock = ManualClock(T0)
    recorder = ImpressionRecorder(pg_sessions, Metrics(), clock=clock)
    user = _user()
    for items in (["a", "b"], ["c"], ["d"]):
        recorder.record(user, "user", items, "m", "1")
        clock.advance(timedelta(seconds=1))
    assert recorder.recent_items(user, 1) == {"d"}  # all three still queued
    recorder.flush()
    recorder.record(user, "user", ["e"], "m", "1")  # queued; the others are in the database
    assert recorder.recent_items(user, 1) == {"e"}
    assert recorder.recent_items(user, 3) == {"e", "d", "c"}
    assert recorder.recent_items(user, 10) == {"a", "b", "c", "d", "e"}
    assert recorder.recent_items(_user(), 5) == set()


def test_retention_deletes_impressions_older_than_the_setting(
    pg_sessions: sessionmaker[Session],
) -> None:
    clock = ManualClock(T0 - timedelta(days=400))  # older than any other test's impressions
    recorder = ImpressionRecorder(pg_sessions, Metrics(), clock=clock)
    user = _user()
    old = recorder.record(user, "user", ["1", "2"], "m", "1")
    clock.advance(timedelta(days=5))
    new = recorder.record(user, "user", ["3"], "m", "1")
    recorder.flush()
    retention = ImpressionRetention(pg_sessions, days=3, interval_s=3600, clock=clock)
    assert retention.clean() == 1
    with pg_sessions() as session:
        kept = set(session.scalars(select(Impression.id).where(Impression.user_id == user)))
    assert kept == {new} and old not in kept
    assert ImpressionRetention(pg_sessions, days=None, interval_s=1).clean() == 0


def test_retention_keeps_what_an_experiment_still_counts(
    pg_sessions: sessionmaker[Session],
) -> None:
    """A running experiment's lists are kept whatever their age (deleting them changed its
    results and SRM while it ran), and a stopped one's for the retention period after it
    stopped, so its results do not change the moment it stops; other lists age as usual."""
    now = T0 - timedelta(days=500)  # older than any other test's impressions
    clock = ManualClock(now - timedelta(days=10))
    recorder = ImpressionRecorder(pg_sessions, Metrics(), clock=clock)
    user, tag = _user(), uuid.uuid4().hex[:8]
    running, recent, old = f"run-{tag}", f"recent-{tag}", f"old-{tag}"
    stopped = {running: None, recent: now - timedelta(days=1), old: now - timedelta(days=5)}
    with pg_sessions.begin() as session:
        session.execute(delete(Experiment).where(Experiment.running.is_(True)))
        for name, stopped_at in stopped.items():
            session.add(
                Experiment(
                    name=name,
                    status="running" if stopped_at is None else "stopped",
                    running=True if stopped_at is None else None,
                    control="a",
                    variants=[],
                    window_minutes=30.0,
                    mixing_sd=0.02,
                    created_at=now - timedelta(days=20),
                    stopped_at=stopped_at,
                )
            )
    try:
        ids = {
            name: recorder.record(user, "user", ["1"], "m", "1", experiment=name, variant="a")
            for name in [*stopped, "gone-experiment"]
        }
        plain = recorder.record(user, "user", ["1"], "m", "1")
        recorder.flush()
        clock.advance(timedelta(days=10))
        assert ImpressionRetention(pg_sessions, days=3, interval_s=3600, clock=clock).clean() == 3
        with pg_sessions() as session:
            kept = set(session.scalars(select(Impression.id).where(Impression.user_id == user)))
        assert kept == {ids[running], ids[recent]}
        assert plain not in kept
    finally:
        with pg_sessions.begin() as session:
            session.execute(delete(Experiment).where(Experiment.name.in_(stopped)))
