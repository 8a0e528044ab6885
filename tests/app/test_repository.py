"""Repository: batch insert in one statement or the caller's transaction, post-cutoff reads in order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ClauseElement

from app.core.cache import MemoryCache
from app.core.db import (
    make_engine,
    make_sessionmaker,
    make_write_engine,
    session_scope,
    upgrade_database,
)
from app.core.metrics import Metrics
from app.db_models import ErasedUser, Interaction
from app.repository import (
    _BATCH_LOG_LATERAL,
    _WINDOW_LATERAL,
    MAX_WINDOW_IMPRESSIONS,
    NewImpression,
    NewInteraction,
    add_interactions,
    count_interactions,
    dashboard_session_revoked,
    delete_erasures,
    erasures_since,
    impressions_in_window,
    insert_impressions,
    revoke_dashboard_session,
    user_interactions,
    users_interactions,
)
from app.serving.erased import ErasedUsers
from app.users import ErasureSync, erase_users
from tests.conftest import POSTGRES_ADMIN_URL, scratch_database

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


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


def test_add_and_read_back_in_event_order(any_backend: sessionmaker[Session]) -> None:
    """Both insert forms (Postgres's unnested arrays, SQLite's executemany) store the same
    rows: null ratings and types, aware UTC times, ids in the order the rows came."""
    tag = uuid.uuid4().hex[:8]  # the Postgres database is shared by the session's tests
    u1, u2 = f"{tag}-u1", f"{tag}-u2"
    with session_scope(any_backend) as s:
        n = add_interactions(
            s,
            [
                NewInteraction(u1, "b", 4.0, T0 + timedelta(hours=1)),
                NewInteraction(u1, "a", None, T0),
                NewInteraction(u2, "a", 5, None, type="click", recommendation_id="r-1"),
                NewInteraction(u2, "c", 2.5, T0, impression_id=None),
            ],
        )
    assert n == 4
    with session_scope(any_backend) as s:
        rows = user_interactions(s, u1)
        assert [r.item_id for r in rows] == ["a", "b"]
        assert rows[0].rating is None and rows[1].rating == 4.0
        assert rows[0].ts == T0  # UTC round trip, aware
        assert rows[1].id < rows[0].id  # inserted in the order given, whatever their times
        assert count_interactions(s, u1) == 2
        assert count_interactions(s, u2) == 2
        second = user_interactions(s, u2)
        assert [(r.item_id, r.rating) for r in second] == [("c", 2.5), ("a", 5.0)]
        assert second[1].ts.tzinfo is not None
        typed = s.execute(
            select(Interaction.type, Interaction.recommendation_id).where(
                Interaction.user_id == u2, Interaction.item_id == "a"
            )
        ).one()
        assert tuple(typed) == ("click", "r-1")


def test_a_group_is_one_statement_all_or_nothing_without_a_transaction(postgres_url: str) -> None:
    """The interaction writer's engine runs in autocommit; the group's rows are still all
    or nothing because they are one statement: a row Postgres refuses (an id longer
    than its column) fails the rows beside it too."""
    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    writes = make_write_engine(engine)
    tag = uuid.uuid4().hex[:8]
    try:
        rows = [NewInteraction(f"{tag}-ok", "1", 4.0), NewInteraction(f"{tag}-ok", "2", 4.0)]
        with pytest.raises(DataError), writes.begin() as conn:
            assert conn.connection.dbapi_connection.autocommit  # type: ignore[union-attr]
            add_interactions(conn, [*rows, NewInteraction(f"{tag}-" + "x" * 300, "3", 4.0)])
        with writes.begin() as conn:
            assert add_interactions(conn, rows) == 2
        with make_sessionmaker(engine)() as s:
            assert count_interactions(s, f"{tag}-ok") == 2  # the second group's, not the first
    finally:
        writes.dispose()
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
        # A user in both lists gets the whole log, once.
        both = users_interactions(s, [unknown, known], future, [unknown])
        assert both == {unknown: logs[unknown]}


def _shown(user: str, at: datetime, n: int) -> NewImpression:
    return NewImpression(f"{user}-{n}", user, "user", [f"i{n}"], "m", "v1", at)


def test_window_keeps_the_newest_impressions_of_each_user(
    any_backend: sessionmaker[Session],
) -> None:
    tag = uuid.uuid4().hex[:8]
    busy, quiet, elsewhere = f"{tag}-busy", f"{tag}-quiet", f"{tag}-other"
    shown = [_shown(busy, T0 + timedelta(minutes=n), n) for n in range(5)]
    shown += [_shown(quiet, T0, 9), _shown(elsewhere, T0, 8)]
    shown.append(_shown(quiet, T0 - timedelta(hours=2), 7))  # before the window
    with session_scope(any_backend) as s:
        insert_impressions(s, shown)
    with session_scope(any_backend) as s:
        found = impressions_in_window(
            s, [busy, quiet, busy], T0 - timedelta(hours=1), T0 + timedelta(hours=1), per_user=2
        )
    # The limit is per user: the busy user's many lists do not crowd out the quiet one's.
    assert sorted(hit.impression_id for hit in found) == [f"{busy}-3", f"{busy}-4", f"{quiet}-9"]
    hit = next(hit for hit in found if hit.impression_id == f"{quiet}-9")
    assert hit.user_id == quiet and list(hit.items) == ["i9"] and hit.created_at == T0


@pytest.fixture
def unanalysed_postgres(postgres_url: str) -> Iterator[Engine]:
    """A database of its own whose tables were never analysed: the planner then takes a
    time range for a row or two, which is how the old attribution query went wrong."""
    with scratch_database(POSTGRES_ADMIN_URL, "genrec_plan") as url:
        upgrade_database(url)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def _plan(engine: Engine, statement: ClauseElement, params: dict[str, Any]) -> str:
    with engine.connect() as connection:
        sql = statement.compile(dialect=connection.dialect)
        rows = connection.exec_driver_sql(f"EXPLAIN ANALYZE {sql}", params)
        return "\n".join(row[0] for row in rows)


def test_window_reads_only_the_batch_users_impressions(unanalysed_postgres: Engine) -> None:
    """Each user's range of ``(user_id, created_at)``, never every impression of the
    window through ``ix_impressions_created_at`` (what ``IN ... ORDER BY ... LIMIT``
    did on such a table, before and during the serve benchmark's mix)."""
    now = datetime.now(UTC)
    others = [_shown(f"u{n % 300}", now - timedelta(seconds=n / 10), n) for n in range(3000)]
    with session_scope(make_sessionmaker(unanalysed_postgres)) as s:
        insert_impressions(s, others)
    plan = _plan(
        unanalysed_postgres,
        _WINDOW_LATERAL,
        {"users": ["u1", "u2", "new"], "earliest": now - timedelta(minutes=30),
         "latest": now, "per_user": MAX_WINDOW_IMPRESSIONS},
    )  # fmt: skip
    assert "ix_impressions_user_id_created_at" in plan, plan
    assert "Rows Removed by Filter" not in plan and "Seq Scan" not in plan, plan


def test_batch_log_reads_only_the_batch_users_rows(unanalysed_postgres: Engine) -> None:
    """One index range per user of the batch, not a scan of the whole log per batch
    (what the ``IN`` form's plan was on such a table: 4.2 million rows in 10 s)."""
    with session_scope(make_sessionmaker(unanalysed_postgres)) as s:
        add_interactions(s, [NewInteraction(f"u{n % 300}", f"i{n}", 4.0) for n in range(3000)])
    batch = [f"u{n}" for n in range(31)]  # the ``IN`` form scanned the table from about 8
    plan = _plan(
        unanalysed_postgres,
        _BATCH_LOG_LATERAL[True],
        {"users": [*batch, "new"], "whole": [False] * len(batch) + [True], "cutoff": T0},
    )
    assert "ix_interactions_user_id_ts" in plan, plan
    assert "Rows Removed by Filter" not in plan and "Seq Scan" not in plan, plan


def test_revoked_dashboard_sessions_are_kept_until_their_cookies_expire(
    any_backend: sessionmaker[Session],
) -> None:
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    with session_scope(any_backend) as s:
        revoke_dashboard_session(s, f"{tag}-old", now - timedelta(seconds=1))
    with session_scope(any_backend) as s:
        revoke_dashboard_session(s, f"{tag}-live", now + timedelta(hours=1))
        revoke_dashboard_session(s, f"{tag}-live", now + timedelta(hours=1))  # twice: harmless
    with session_scope(any_backend) as s:
        assert dashboard_session_revoked(s, f"{tag}-live")
        assert not dashboard_session_revoked(s, f"{tag}-old")  # expired: forgotten
        assert not dashboard_session_revoked(s, f"{tag}-never")


def test_deleting_erasure_records_names_their_epoch(blank_database_url: str) -> None:
    """A prune deletes the records it planned to; a user erased again since then holds a
    newer epoch, and that record stays (on both backends: a tuple IN)."""
    upgrade_database(blank_database_url)
    engine = make_engine(blank_database_url)
    sessions = make_sessionmaker(engine)
    try:
        erase_users(sessions, ["a", "b"])
        with session_scope(sessions) as s:
            planned = [(row.user_id, row.epoch) for row in erasures_since(s, -1)]
        assert planned == [("a", 1), ("b", 1)]
        erase_users(sessions, ["a"])  # meanwhile: "a" erased again, epoch 2
        with session_scope(sessions) as s:
            assert delete_erasures(s, planned) == 1
        with session_scope(sessions) as s:
            assert [(row.user_id, row.epoch) for row in erasures_since(s, -1)] == [("a", 2)]
    finally:
        engine.dispose()


def test_two_erasures_at_once_on_sqlite_take_two_epochs(sqlite_url: str) -> None:
    """An erasure that commits while another is between reading the newest epoch and
    writing must not take the same epoch: a server that polled in between, past the first
    one's user, passed over the second's, whose id sorts lower, and served its trained
    history on. Here the second erasure runs while the first has just read the epoch; on a
    connection that does not wait, it is refused (the first holds the write lock) and is
    retried after the first commits."""
    first = make_engine(sqlite_url)
    # The second writer does not wait for a lock (this test runs both on one thread).
    second = create_engine(sqlite_url, connect_args={"timeout": 0})
    polls = make_engine(sqlite_url)
    erased = ErasedUsers()
    sync = ErasureSync(make_sessionmaker(polls), erased, MemoryCache(Metrics()), interval_s=60)
    outcomes: list[str] = []

    def erase_another(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "max(erased_users.epoch)" in statement and not outcomes:
            try:
                erase_users(make_sessionmaker(second), ["zed"])
                outcomes.append("committed")
            except OperationalError:
                outcomes.append("refused")
            sync.refresh()  # a server polls meanwhile

    try:
        sync.refresh()  # a running server's first read: nothing erased yet
        event.listen(first, "after_cursor_execute", erase_another)
        erase_users(make_sessionmaker(first), ["aaron"])
        event.remove(first, "after_cursor_execute", erase_another)
        sync.refresh()
        if outcomes == ["refused"]:
            erase_users(make_sessionmaker(second), ["zed"])  # the operator's retry
            sync.refresh()
        assert "aaron" in erased and "zed" in erased, outcomes
        with session_scope(make_sessionmaker(polls)) as session:
            epochs = session.scalars(select(ErasedUser.epoch)).all()
        assert sorted(epochs) == [1, 2]
    finally:
        first.dispose()
        second.dispose()
        polls.dispose()


def test_no_interaction_acknowledged_before_an_erasure_commits_survives_it(
    postgres_url: str,
) -> None:
    """An interaction write that commits while an erasure of its user is under way either
    waits for the erasure (and is then data logged after it) or is deleted by it: one
    that committed (was acknowledged) before the erasure did, after the erasure's delete
    had read the log, outlived the erasure on Postgres. The write here gives up rather
    than wait (this test runs both on one thread)."""
    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    writes = make_write_engine(engine)
    user = f"erased-{uuid.uuid4().hex[:8]}"
    acknowledged: list[bool] = []

    def write_meanwhile(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("DELETE FROM interactions") and not acknowledged:
            try:
                with writes.begin() as conn:
                    conn.execute(text("SET lock_timeout = '200ms'"))
                    add_interactions(conn, [NewInteraction(user, "late", 5.0)])
                acknowledged.append(True)
            except OperationalError:  # the erasure holds the log: not written, not acknowledged
                acknowledged.append(False)

    try:
        with writes.begin() as conn:
            add_interactions(conn, [NewInteraction(user, "1", 4.0)])
        event.listen(engine, "after_cursor_execute", write_meanwhile)
        erase_users(make_sessionmaker(engine), [user])
        event.remove(engine, "after_cursor_execute", write_meanwhile)
        assert len(acknowledged) == 1  # the write ran while the erasure was under way
        with make_sessionmaker(engine)() as s:
            assert count_interactions(s, user) == 0, acknowledged
    finally:
        writes.dispose()
        engine.dispose()
