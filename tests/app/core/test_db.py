"""Engine creation and the Alembic migration (SQLite here; Postgres in the integration tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError

from app.core import db as db_module
from app.core.db import (
    DatabaseGuard,
    DatabaseUnavailable,
    make_engine,
    make_read_engine,
    make_sessionmaker,
    make_write_engine,
    ping,
    upgrade_database,
)
from tests.manual_clock import ManualClock


def test_upgrade_creates_interactions_with_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/dir/log.db"
    upgrade_database(url)
    upgrade_database(url)  # idempotent: a second run is a no-op
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        columns = {c["name"] for c in inspector.get_columns("interactions")}
        assert columns == {
            *("id", "user_id", "item_id", "rating", "ts", "created_at"),
            *("type", "recommendation_id", "impression_id"),  # migration 0004
        }
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("interactions")}
        assert indexes["ix_interactions_user_id_ts"] == ["user_id", "ts"]
        ping(engine)
    finally:
        engine.dispose()
    assert (tmp_path / "nested" / "dir" / "log.db").exists()


def _fail(error: Exception) -> None:
    raise error


def test_guard_opens_on_unreachable_probes_after_retry_and_closes_on_success() -> None:
    clock = ManualClock(100.0)
    guard = DatabaseGuard(retry_s=0.2, clock=clock)
    down = OperationalError("SELECT 1", {}, Exception("connection refused"))
    with pytest.raises(OperationalError), guard.attempt():
        _fail(down)
    assert guard.is_down
    with pytest.raises(DatabaseUnavailable), guard.attempt():
        pass  # refused without running: the breaker is open
    clock.advance(0.19)
    with pytest.raises(DatabaseUnavailable), guard.attempt():
        pass  # still inside the retry window
    clock.advance(0.02)
    with guard.attempt():
        pass  # the probe runs and succeeds
    assert not guard.is_down


def test_guard_ignores_errors_that_do_not_mean_down() -> None:
    guard = DatabaseGuard(retry_s=60)
    with pytest.raises(IntegrityError), guard.attempt():
        _fail(IntegrityError("INSERT", {}, Exception("duplicate")))
    assert not guard.is_down


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_idle_pooled_connection_killed_by_the_server_is_replaced_at_checkout(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool pings a connection that sat idle, so a server-side kill (a restart) costs a
    reconnect, not a failed statement; one checked out again at once is not pinged."""
    engine = make_engine(postgres_url)
    admin = make_engine(postgres_url)
    try:
        first = _backend_pid(engine)
        assert _backend_pid(engine) == first  # busy a moment ago: the same pooled connection
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        monkeypatch.setattr(db_module, "IDLE_PING_S", 0.0)  # every pooled connection is idle
        second = _backend_pid(engine)  # the ping found it dead; the pool reconnected
        assert second != first
        with make_sessionmaker(engine)() as session:  # a pinged connection is not
            assert session.execute(text("SELECT 1")).scalar_one() == 1  # left in a transaction
    finally:
        engine.dispose()
        admin.dispose()


def test_connection_killed_while_busy_fails_once_then_the_pool_reconnects(
    postgres_url: str,
) -> None:
    """Without the idle ping the dead connection fails one statement (the caller's error
    handling answers it) and SQLAlchemy invalidates the pool: the next one works."""
    engine = make_engine(postgres_url)
    admin = make_engine(postgres_url)
    try:
        first = _backend_pid(engine)
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        with pytest.raises(OperationalError):
            _backend_pid(engine)
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()
        admin.dispose()


def test_read_sessions_on_postgres_run_single_statements_outside_a_transaction(
    postgres_url: str,
) -> None:
    """No BEGIN/COMMIT round trips around a log read, and the next read sees a new commit."""
    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    read_engine = make_read_engine(engine)
    assert read_engine is not engine  # a pool of its own, in autocommit from connect
    try:
        reads = make_sessionmaker(read_engine)
        with reads() as session:
            before = session.execute(text("SELECT count(*) FROM interactions")).scalar_one()
            dbapi = session.connection().connection.dbapi_connection
            assert dbapi is not None and dbapi.info.transaction_status.name == "IDLE"
        with engine.begin() as conn:  # a write committed elsewhere...
            conn.execute(
                text(
                    "INSERT INTO interactions (user_id, item_id, ts, created_at) "
                    "VALUES ('read-test', '1', now(), now())"
                )
            )
        with reads() as session:  # ...is seen by the next read
            after = session.execute(text("SELECT count(*) FROM interactions")).scalar_one()
        assert after == before + 1
        with engine.connect() as conn:  # the write engine's connections keep transactions
            conn.execute(text("SELECT 1"))
            plain = conn.connection.dbapi_connection
            assert plain is not None and plain.info.transaction_status.name == "INTRANS"
    finally:
        read_engine.dispose()
        engine.dispose()


def test_read_engine_on_postgres_plans_keyed_reads_only(postgres_url: str) -> None:
    """Its sessions have sequential scans off (the log reads must use the user index,
    whatever the statistics say); the shared engine's sessions keep the default."""
    engine = make_engine(postgres_url)
    read_engine = make_read_engine(engine)
    try:
        for _ in range(2):  # a fresh connection, then one back from the pool
            with read_engine.connect() as conn:
                assert conn.execute(text("SHOW enable_seqscan")).scalar_one() == "off"
                dbapi = conn.connection.dbapi_connection
                assert dbapi is not None and dbapi.info.transaction_status.name == "IDLE"
        with engine.connect() as conn:
            assert conn.execute(text("SHOW enable_seqscan")).scalar_one() == "on"
    finally:
        read_engine.dispose()
        engine.dispose()


def test_write_engine_on_postgres_is_one_autocommit_connection(postgres_url: str) -> None:
    """The interaction writer's engine: its own pool of one connection (the one writer
    thread), in autocommit, so ``begin()`` sends neither BEGIN nor COMMIT."""
    engine = make_engine(postgres_url)
    writes = make_write_engine(engine)
    assert writes is not engine
    try:
        assert writes.pool.size() == 1  # type: ignore[attr-defined]
        assert writes.pool._max_overflow == 0  # type: ignore[attr-defined]
        with writes.begin() as conn:
            conn.execute(text("SELECT 1"))
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None and dbapi.info.transaction_status.name == "IDLE"
    finally:
        writes.dispose()
        engine.dispose()


@pytest.mark.parametrize("make", [make_read_engine, make_write_engine])
def test_read_and_write_engines_on_sqlite_are_the_engine_itself(
    tmp_path: Path, make: Callable[[Engine], Engine]
) -> None:
    """No second pool on one SQLite file: its statements cost no round trips anyway, and
    the writer's group is a transaction of the shared engine."""
    engine = make_engine(f"sqlite:///{tmp_path}/genrec.db")
    try:
        assert make(engine) is engine
    finally:
        engine.dispose()


def test_pool_size_below_one_is_refused_not_read_as_no_limit(postgres_url: str) -> None:
    with pytest.raises(ValueError, match="pool_size must be at least 1, not 0"):
        make_engine(postgres_url, pool_size=0)
    engine = make_engine(postgres_url, pool_size=3)
    try:
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 3  # type: ignore[attr-defined]
    finally:
        engine.dispose()
