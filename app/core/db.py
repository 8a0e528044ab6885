"""Database engine, sessions and migrations.

One synchronous engine per app (FastAPI runs sync routes in a thread pool).
A pooled Postgres connection that sat idle for ``IDLE_PING_S`` is pinged at
checkout (``_ping_if_idle``), so a restarted Postgres costs one reconnect
instead of a failed request; a connection checked out again within that time
is not: SQLAlchemy's ``pool_pre_ping`` pinged on *every* checkout, one extra
round trip per recommendation batch and per write under load. ``upgrade_database`` is what ``genrec migrate`` and the
startup ``auto_migrate`` run.

Stored text is read back encodable (``app.core.text``): a JSON column's lone surrogate
escape, and SQLite text that is not UTF-8, come back with U+FFFD in their place.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from app.core.config import normalise_database_url
from app.core.text import decode_sqlite_text
from app.core.text import loads as json_loads
from training.passwords import masked_url, without_password

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(
    url: str,
    connect_timeout_s: float = 10.0,
    autocommit: bool = False,
    pool_size: int | None = None,
    max_overflow: int | None = None,
) -> Engine:
    """Engine for ``url``; creates the SQLite file's directory so embedded mode just works.

    On Postgres, ``connect_timeout_s`` bounds what a black-holed server costs a
    request, and ``pool_timeout`` bounds the wait for a pooled connection, so a
    database outage turns into fast 503s / degraded reads instead of a pile-up.
    ``autocommit`` opens every pooled connection in autocommit (``make_read_engine``,
    ``make_write_engine``); ``pool_size`` connections are pooled, and ``max_overflow``
    more (as many again by default) may open beside them. SQLAlchemy reads a pool size
    of 0 as "no limit", which no caller means, so below 1 is refused.
    """
    if pool_size is not None and pool_size < 1:
        raise ValueError(f"pool_size must be at least 1, not {pool_size}")
    url = normalise_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_deserializer=json_loads,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if pool_size is None:
        pool_size = READ_POOL_SIZE if autocommit else 10
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_timeout=max(connect_timeout_s, 1.0),
        connect_args={"connect_timeout": max(1, round(connect_timeout_s))},
        json_deserializer=json_loads,
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine))
    return engine


#: Pooled connections of a read engine (and as many more on overflow): its readers are the
#: scoring threads, one per served model version.
READ_POOL_SIZE = 4


#: A pooled connection idle for longer than this is pinged before it is handed out.
IDLE_PING_S = 1.0


def _note_checkin(_dbapi_connection: object, record: ConnectionPoolEntry) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(
    engine: Engine, dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object
) -> None:
    """SQLAlchemy's documented pessimistic disconnect handling, for idle connections only.

    The ping is the dialect's own (``do_ping``: on psycopg it pings in autocommit,
    so the connection is not left inside a transaction by it). Raising ``DisconnectionError``
    makes the pool discard this connection and check out another (a fresh one
    after a restart). A connection back in the pool for less than
    ``IDLE_PING_S`` was working a moment ago; under load that is every checkout,
    and a server that died in between costs that one operation (a degraded read
    or a 503 write, then the pool reconnects).
    """
    checked_in = record.info.get("checked_in")
    if checked_in is None or time.monotonic() - checked_in < IDLE_PING_S:
        return  # fresh from connect, or busy a moment ago
    try:
        engine.dialect.do_ping(dbapi_connection)
    except Exception as error:
        raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # WAL lets readers proceed while a POST writes; the log is tiny per request.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # Text another client wrote that is not UTF-8 reads as U+FFFD, not as an error.
    dbapi_connection.text_factory = decode_sqlite_text  # type: ignore[attr-defined]


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded rows usable after commit (responses read them)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def make_read_engine(engine: Engine, connect_timeout_s: float = 10.0) -> Engine:
    """An engine for single-statement reads (the serving path's log queries).

    On Postgres, a second, small pool whose connections are in autocommit from
    their first connect: psycopg otherwise sends ``BEGIN`` before the statement
    and a ``COMMIT`` after it, three round trips for one read, on the scoring
    thread of every recommendation batch. A single statement reads one
    consistent snapshot of everything committed before it began, so an
    acknowledged interaction is still seen by the next read. A pool of its own
    rather than ``engine.execution_options(isolation_level="AUTOCOMMIT")`` on the
    shared one: that option switches each connection to autocommit at checkout
    and back at checkin, on every batch (a prediction scored alone, in process,
    Postgres + Redis: 1,102-1,161 us of CPU before, 1,023-1,096 after;
    docs/data/serve-2026-12-04-cache/read_engine). SQLite (no
    round trips, WAL) reads through ``engine`` itself; the caller disposes the
    returned engine when it is not ``engine``.
    """
    reads = _autocommit_pool(engine, connect_timeout_s)
    if reads is not engine:
        event.listen(reads, "connect", _keyed_reads_only)
    return reads


def make_write_engine(engine: Engine, connect_timeout_s: float = 10.0) -> Engine:
    """An engine for the interaction writer's groups, whose every statement stands alone.

    A group is its attribution reads and then one ``INSERT`` of every row of its
    requests (``app.repository.add_interactions``). A single statement is atomic by
    itself, so the group is still all or nothing without a transaction around it; in
    autocommit psycopg sends no ``BEGIN`` before the first statement and no ``COMMIT``
    after the last: two round trips fewer per group (a write in the serve benchmark's
    mix, which looks up one attribution window: four round trips, now two). The writer
    is one thread, and a round trip is time it waits with its group's requests
    unacknowledged; to a database across a network each costs far more than on
    loopback. On Postgres a pool of its own (one connection for the one writer), in
    autocommit from its first connect like ``make_read_engine``'s; SQLite (no round
    trips) writes through ``engine`` in a transaction, and the caller disposes the
    returned engine when it is not ``engine``.
    """
    return _autocommit_pool(engine, connect_timeout_s, pool_size=1, max_overflow=0)


def _autocommit_pool(
    engine: Engine,
    connect_timeout_s: float,
    pool_size: int | None = None,
    max_overflow: int | None = None,
) -> Engine:
    """A pool of ``engine``'s Postgres database in autocommit from connect; ``engine``
    itself on SQLite. What the read and write engines share."""
    if engine.dialect.name != "postgresql":
        return engine
    url = engine.url.render_as_string(hide_password=False)
    return make_engine(url, connect_timeout_s, True, pool_size, max_overflow)


def _keyed_reads_only(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    """``enable_seqscan = off`` for the read engine's sessions, set once per connection.

    Its statements look users up by the ``(user_id, ts)`` index, and no scan of the
    whole log is ever the right plan for them; but a planner whose statistics say
    the table is nearly empty (analysed before the first writes, a minute behind a
    young log) chose one per batch for the ``IN`` form and one per user of every
    batch for the ``LATERAL`` one: 5.6 and 52.7 million rows read over one mix run
    (docs/performance.md, "What Postgres read for the mix"). The
    setting does not forbid a scan, it makes every other plan cheaper in the
    planner's eyes. A session-level ``SET``: behind a pooler in transaction mode
    (pgbouncer) it would leak to other clients, so give this engine a session-mode pool.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET enable_seqscan = off")
    finally:
        cursor.close()


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error, always close."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def command_sessions(url: str, migrate: bool) -> Iterator[sessionmaker[Session]]:
    """Sessions on ``url`` for one command-line write (``items import``/``remove``,
    ``users erase``), the schema upgraded first when ``migrate``; the engine is
    disposed after, so a short-lived command leaves no pool behind. Database errors
    propagate for the caller to word (``database_problem``)."""
    engine = make_engine(url)
    try:
        if migrate:
            upgrade_database(url)
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def database_problem(url: str, error: Exception) -> str:
    """``where: reason`` of a database error on one line, the password left out (also where
    the reason quotes it): for a command's error line (SQLAlchemy's own message adds the
    driver's hint and a link to its docs on lines of their own). A missing table means
    the schema is not there yet (``GENREC_AUTO_MIGRATE=false``, as compose runs it, leaves
    it to ``genrec migrate``): the line says so, as ``/readyz`` does."""
    reason = str(getattr(error, "orig", None) or error).splitlines()[0]
    if missing_table(error):
        reason += "; the database lacks genrec's tables: run `genrec migrate`"
    return without_password(f"{masked_url(url)}: {reason}", url)


def missing_table(error: Exception) -> bool:
    """Whether ``error`` is a query on a table the database does not have: Postgres'
    SQLSTATE 42P01 (``relation "items" does not exist``), SQLite's "no such table"."""
    orig = getattr(error, "orig", None) or error
    return getattr(orig, "sqlstate", None) == "42P01" or str(orig).startswith("no such table")


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer ``SELECT 1`` (readiness probe)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@functools.cache
def _known_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(every revision this package ships, its heads), read once from the migrations."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    known = frozenset(r.revision for r in script.walk_revisions())
    return known, frozenset(script.get_heads())


def schema_problem(engine: Engine) -> str | None:
    """What keeps the database's schema from being the one this server writes, or None.

    ``SELECT 1`` answers on a database without genrec's tables too (dropped and
    recreated, or never migrated because the startup migration failed): ``/readyz``
    said ``database.ok`` while every write and admin call answered 503. A revision
    this package does not know is a newer server's migration (a rolling upgrade) and
    is not called a problem: migrations only add. Raises like ``ping`` when the
    database cannot be reached.
    """
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    known, heads = _known_revisions()
    if not current:
        return "the database has no genrec schema (never migrated): run `genrec migrate`"
    if current <= known and current != heads:
        return (
            f"the database's schema is at revision {', '.join(sorted(current))}, this server's "
            f"is {', '.join(sorted(heads))}: run `genrec migrate`"
        )
    return None


def alembic_config(url: str) -> object:
    """Alembic config pointing at the migrations shipped inside the package."""
    from alembic.config import Config

    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is ConfigParser interpolation syntax; passwords may contain it.
    cfg.set_main_option("sqlalchemy.url", normalise_database_url(url).replace("%", "%%"))
    return cfg


def upgrade_database(url: str, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision`` (idempotent); used by ``genrec migrate``.

    Returns None when it migrated (or had nothing to apply), else why it left the schema
    alone: a revision this package does not ship is a later release's (a rolling upgrade
    runs this release beside it; going back redeploys this release). Migrations only add,
    so this release runs on that schema (``schema_problem`` agrees), and Alembic, which
    cannot upgrade from a revision it does not know, would fail with ``Can't locate
    revision``: compose's one-shot ``migrate`` service then failed, and no api container
    of the previous image started.
    """
    from alembic import command

    engine = make_engine(url)  # on SQLite, also creates the parent directory
    try:
        later = _later_revisions(engine)
    finally:
        engine.dispose()
    if later:
        _, heads = _known_revisions()
        return (
            f"the database's schema is at revision {', '.join(later)}, which a later release "
            f"of genrec applied (this release's latest is {', '.join(sorted(heads))}): left as "
            "it is; migrations only add, so this release runs on it"
        )
    command.upgrade(alembic_config(url), revision)  # type: ignore[arg-type]
    return None


def _later_revisions(engine: Engine) -> list[str]:
    """The database's current revisions that this package does not ship (sorted)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    known, _ = _known_revisions()
    return sorted(current - known)


#: Failures that mean "the database cannot be reached", as opposed to a bad statement.
UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,
)


class DatabaseUnavailable(Exception):
    """The database is known to be down; raised without trying (see ``DatabaseGuard``)."""


class DatabaseGuard:
    """A circuit breaker in front of the database.

    Why: during an outage every request would otherwise spend a connect
    attempt (up to ``connect_timeout``) in a thread-pool thread, and a pile of
    those starves the reads that could answer without the database. After a
    failure the guard answers "down" at once for ``retry_s``; then one caller
    at a time probes, and the first success closes it again, so the service
    recovers on its own when the database is back.
    """

    def __init__(self, retry_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_s = retry_s
        self.clock = clock  # seconds, monotonic; tests pass one they advance by hand
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down = False

    @property
    def is_down(self) -> bool:
        return self._down

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """Run one database operation, or raise ``DatabaseUnavailable`` while the breaker is open."""
        with self._lock:
            now = self.clock()
            if self._down and now < self._down_until:
                raise DatabaseUnavailable("the database failed recently; not retried yet")
            if self._down:
                self._down_until = now + self.retry_s  # this caller is the probe
        try:
            yield
        except UNREACHABLE_ERRORS as error:
            self._record_failure(error)
            raise
        self._record_success()

    def _record_failure(self, error: Exception) -> None:
        with self._lock:
            first = not self._down
            self._down = True
            self._down_until = self.clock() + self.retry_s
        if first:
            log.error("database unreachable, reads degrade and writes answer 503: %s", error)

    def _record_success(self) -> None:
        if not self._down:
            return
        with self._lock:
            was_down, self._down = self._down, False
        if was_down:
            log.info("database reachable again")
