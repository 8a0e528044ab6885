"""Every SQL statement the service runs; functions take a session, callers commit.

Keeping queries here (and nowhere in routes or serving code) means the one
place that knows the schema is next to the ORM and the migrations. That is
also why this file runs past 400 lines: splitting it by table would scatter
the schema knowledge it exists to keep together.

Time handling: every datetime is written and compared in UTC. SQLite stores
naive strings, so values read back naive are UTC by construction. Job leases are
the one place the database's own clock is used (``app.core.db_time``): they are
compared across machines, whose clocks need not agree.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.core.db_time import POSTGRES_NOW, database_now
from app.db_models import (
    WAITING,
    AttributeKind,
    CatalogEpoch,
    ErasedUser,
    Experiment,
    Impression,
    Interaction,
    Item,
    RetrainJob,
    RevokedDashboardSession,
)
from training.data.cutoff import after_training


@dataclass(frozen=True)
class NewInteraction:
    """A validated interaction to log; ``ts`` None means "now"."""

    user_id: str
    item_id: str
    rating: float | None = None
    ts: datetime | None = None
    type: str | None = None
    recommendation_id: str | None = None
    impression_id: str | None = None  # the attribution, decided by ``app.serving.attribution``
    #: ``ts`` is the receiving server's clock when the event arrived (the client sent no
    #: ``timestamp``), not the client's word: attribution lets a list stamped after such
    #: an event answer it, never one after a client's time (``app.serving.attribution``).
    stamped_on_receipt: bool = False


@dataclass(frozen=True)
class LoggedInteraction:
    """A row of the log as serving needs it (``id`` orders and stamps state)."""

    id: int
    item_id: str
    rating: float | None
    ts: datetime
    #: The event's type (``GENREC_EVENT_TYPES``), None when untyped: one of weight <= 0
    #: (``dislike``) marks its item seen and is never feedback (``app.serving.state``).
    type: str | None = None


def as_utc(moment: datetime) -> datetime:
    """Aware UTC datetime; naive input is taken to be UTC (how SQLite returns it)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def as_connection(db: Session | Connection) -> Connection:
    """The ``Connection`` to run a Core statement on: a ``Session``'s own, or ``db`` itself.

    The serving path's statements run on a plain ``Connection`` (no ORM execution
    path, no session bookkeeping); tests and admin code hand in a ``Session``.
    """
    return db.connection() if isinstance(db, Session) else db


def add_interactions(db: Session | Connection, rows: Sequence[NewInteraction]) -> int:
    """Insert ``rows`` in one statement on Postgres (an executemany elsewhere); the count.

    One statement is atomic by itself, which is what lets the interaction writer run a
    group without a transaction around it (``app.core.db.make_write_engine``): the
    rows go as one array per column, unnested in their order (``WITH ORDINALITY``, so
    a request's rows get increasing ids, as the log's order wants), in a statement
    whose text does not change with the number of rows. On SQLite the rows go by
    executemany in the caller's transaction.

    ``created_at`` (the arrival time the cutoff rule compares, ``training.data.cutoff``)
    is the database's clock in the statement (``database_now``), never this server's:
    a log read's cutoff is the database's clock too (``log_reader.log_cutoff``), and
    an app server whose clock lagged the worker's stamped rows written after a read
    as if before it, lost to the version and to serving's fold-in alike. On Postgres
    that is ``now()``, the transaction's start, so a row's stamp precedes its commit
    by at most the write's length, which the read's commit margin outlasts; on SQLite
    the expression writes SQLAlchemy's own text format, so stamps compare alike. An
    event without its own time (``ts``) still takes this server's: the rule is exact
    whatever the event time (a row is folded in when either time is after the cutoff),
    so only the arrival time has to be the reader's clock.
    A Core insert of the table, not ``session.add_all`` + flush: the ORM's unit of
    work is Python the group-commit writer runs under the GIL, against the event
    loop; with the prebuilt statements below it cut the writer's CPU per group
    from 3.0-3.2 to 0.84-0.86 ms (docs/performance.md, "Per-request CPU of the mix").
    """
    if not rows:
        return 0
    now = datetime.now(UTC)
    connection = as_connection(db)
    if connection.dialect.name == "postgresql":
        connection.execute(
            _INSERT_INTERACTIONS_UNNESTED,
            {
                "user_id": [row.user_id for row in rows],
                "item_id": [row.item_id for row in rows],
                "rating": [None if row.rating is None else float(row.rating) for row in rows],
                "ts": [as_utc(row.ts) if row.ts is not None else now for row in rows],
                "type": [row.type for row in rows],
                "recommendation_id": [row.recommendation_id for row in rows],
                "impression_id": [row.impression_id for row in rows],
            },
        )
        return len(rows)
    connection.execute(
        _INSERT_INTERACTION,
        [
            {
                "user_id": row.user_id,
                "item_id": row.item_id,
                "rating": row.rating,
                "ts": as_utc(row.ts) if row.ts is not None else now,
                "type": row.type,
                "recommendation_id": row.recommendation_id,
                "impression_id": row.impression_id,
            }
            for row in rows
        ],
    )
    return len(rows)


#: Elsewhere (SQLite): an executemany whose ``created_at`` is the database's clock.
_INSERT_INTERACTION = insert(Interaction.metadata.tables[Interaction.__tablename__]).values(
    created_at=database_now()
)
#: Postgres: a group's rows as one array per column; the casts name the arrays' types so
#: that an all-null column (no typed events, say) is not left for the server to guess.
#: ``created_at`` is ``database_now()`` as Postgres writes it (``now()``: one stable value
#: per transaction, no per-row arithmetic); the text stays the same for any row count.
_INSERT_INTERACTIONS_UNNESTED = text(
    "INSERT INTO interactions "
    "(user_id, item_id, rating, ts, created_at, type, recommendation_id, impression_id) "
    f"SELECT r.user_id, r.item_id, r.rating, r.ts, {POSTGRES_NOW}, r.type, "
    "r.recommendation_id, "
    "r.impression_id FROM unnest(CAST(:user_id AS text[]), CAST(:item_id AS text[]), "
    "CAST(:rating AS double precision[]), CAST(:ts AS timestamptz[]), CAST(:type AS text[]), "
    "CAST(:recommendation_id AS text[]), CAST(:impression_id AS text[])) "
    "WITH ORDINALITY AS r(user_id, item_id, rating, ts, type, recommendation_id, impression_id, n) "
    "ORDER BY r.n"
)
_IMPRESSIONS = Impression.metadata.tables[Impression.__tablename__]
_INTERACTIONS = Interaction.metadata.tables[Interaction.__tablename__]


def user_interactions(
    session: Session, user_id: str, after: datetime | None = None
) -> list[LoggedInteraction]:
    """The user's logged interactions, oldest first; with ``after``, only newer ones.

    "Newer" means the event time *or* the arrival time is after ``after``: a
    late-arriving event with an old timestamp was not in the training data
    either, so it must still reach the user's state.
    """
    query = select(
        Interaction.id, Interaction.item_id, Interaction.rating, Interaction.ts, Interaction.type
    ).where(Interaction.user_id == user_id)
    if after is not None:
        cutoff = as_utc(after)
        query = query.where(after_training(Interaction.ts, Interaction.created_at, cutoff))
    query = query.order_by(Interaction.ts, Interaction.id)
    return [
        LoggedInteraction(int(r.id), r.item_id, r.rating, as_utc(r.ts), r.type)
        for r in session.execute(query)
    ]


def _batch_log_statement(
    with_cutoff: bool,
) -> Select[str, int, str, float | None, datetime, str | None]:
    """The micro-batch log query, built once: ``recent`` users (after ``cutoff`` when
    ``with_cutoff``) or ``whole`` users (every row), oldest first."""
    recent: ColumnElement[bool] = Interaction.user_id.in_(bindparam("recent", expanding=True))
    if with_cutoff:
        cutoff: BindParameter[datetime] = bindparam("cutoff")
        recent = and_(recent, after_training(Interaction.ts, Interaction.created_at, cutoff))
    return (
        select(
            Interaction.user_id,
            Interaction.id,
            Interaction.item_id,
            Interaction.rating,
            Interaction.ts,
            Interaction.type,
        )
        .where(or_(recent, Interaction.user_id.in_(bindparam("whole", expanding=True))))
        .order_by(Interaction.ts, Interaction.id)
    )


def _batch_log_lateral(
    with_cutoff: bool,
) -> Select[str, int, str, float | None, datetime, str | None]:
    """Postgres's micro-batch log query: one index range scan of ``(user_id, ts)`` per
    user of the batch (``unnest`` of two bound arrays: the users, and whether each
    gets its whole log), oldest first (the order the fold-in's "latest rating wins"
    relies on, so it is the statement's own ``ORDER BY``, not the join's).

    Why not ``user_id IN (...)``: on a table not yet analysed, from about eight users
    on, the planner scanned all of it for every batch (1,572-1,743 scans reading 6
    million rows over one run of the serve benchmark's mix, on a log of 7,600 rows;
    docs/performance.md, "What Postgres read for the mix"), and the expanding ``IN``
    is compiled again for every batch size, where two bound arrays keep one statement
    text. Here a user's rows cost the same whatever the table's size or statistics.
    ``OFFSET 0`` keeps the planner from flattening the ``LATERAL`` into a hash join
    over a full scan.
    """
    users = (
        func.unnest(
            bindparam("users", type_=ARRAY(String)), bindparam("whole", type_=ARRAY(Boolean))
        )
        .table_valued("user_id", "whole")
        .render_derived(name="u")
    )
    rows: ColumnElement[bool] = Interaction.user_id == users.c.user_id
    if with_cutoff:
        cutoff: BindParameter[datetime] = bindparam("cutoff")
        newer = after_training(Interaction.ts, Interaction.created_at, cutoff)
        rows = and_(rows, or_(users.c.whole, newer))
    log = (
        select(
            Interaction.id,
            Interaction.item_id,
            Interaction.rating,
            Interaction.ts,
            Interaction.type,
        )
        .where(rows)
        .offset(literal_column("0"))
        .lateral("l")
    )
    return (
        select(users.c.user_id, log.c.id, log.c.item_id, log.c.rating, log.c.ts, log.c.type)
        .select_from(users.join(log, true()))
        .order_by(log.c.ts, log.c.id)
    )


_BATCH_LOG = {True: _batch_log_statement(True), False: _batch_log_statement(False)}
_BATCH_LOG_LATERAL = {True: _batch_log_lateral(True), False: _batch_log_lateral(False)}


def users_interactions(
    db: Session | Connection,
    user_ids: Sequence[str],
    after: datetime | None,
    whole_log: Sequence[str] = (),
) -> dict[str, list[LoggedInteraction]]:
    """Many users' logs in one statement (serving's micro-batches), oldest first per user.

    Users in ``user_ids`` get the rows after ``after`` (same rule as
    ``user_interactions``); users in ``whole_log`` get every row. Users with
    nothing logged are absent from the result.

    It runs on every recommendation batch, so the statement is built once and
    executed on a connection (Core, not the ORM's execution path): 150 us
    instead of 390 us for a batch of 16 on SQLite (benchmarks/serve_inprocess.py).
    Serving passes a ``Connection`` (``LogReader.read_many``), tests a ``Session``.
    """
    connection = as_connection(db)
    if not user_ids and not whole_log:
        return {}
    whole = list(dict.fromkeys(whole_log))
    in_whole = set(whole)  # a user in both lists gets the whole log, once
    recent = [user for user in dict.fromkeys(user_ids) if user not in in_whole]
    params: dict[str, Any]
    if connection.dialect.name == "postgresql":
        statement = _BATCH_LOG_LATERAL[after is not None]
        params = {"users": recent + whole, "whole": [False] * len(recent) + [True] * len(whole)}
    else:
        statement = _BATCH_LOG[after is not None]
        params = {"recent": recent, "whole": whole}
    if after is not None:
        params["cutoff"] = as_utc(after)
    out: dict[str, list[LoggedInteraction]] = {}
    for r in connection.execute(statement, params):
        out.setdefault(r.user_id, []).append(
            LoggedInteraction(int(r.id), r.item_id, r.rating, as_utc(r.ts), r.type)
        )
    return out


def count_interactions(session: Session, user_id: str | None = None) -> int:
    """Number of logged interactions (of one user when given)."""
    query = select(func.count()).select_from(Interaction)
    if user_id is not None:
        query = query.where(Interaction.user_id == user_id)
    return int(session.execute(query).scalar_one())


# --------------------------------------------------------------------------- impressions


@dataclass(frozen=True)
class NewImpression:
    """What one recommendation response showed (``id`` is its ``recommendation_id``)."""

    id: str
    user_id: str | None
    kind: str
    items: Sequence[str]
    model: str
    version: str
    created_at: datetime
    experiment: str | None = None
    variant: str | None = None
    latency_ms: float | None = None  # server-side time to produce the list
    session_id: str | None = None  # an ad-hoc request's session (not a user id)


#: Columns of ``impressions`` in the order the batch statement binds them.
_IMPRESSION_COLUMNS = (
    "id", "user_id", "kind", "items", "model", "version", "experiment", "variant", "latency_ms",
    "session_id", "created_at",
)  # fmt: skip

# Postgres: the whole batch as one JSON document, so the statement text is the same
# for every batch (psycopg parses each new text in Python: 0.1 s for a long VALUES
# list) and the values are encoded by the json module's C encoder (psycopg's text
# arrays quote every element in Python, ~40 us per impression).
_PG_INSERT_IMPRESSIONS = """
INSERT INTO impressions (id, user_id, kind, items, model, version, experiment, variant,
                         latency_ms, session_id, created_at)
SELECT id, user_id, kind, items, model, version, experiment, variant, latency_ms, session_id,
       created_at
FROM json_to_recordset(%s::json) AS r(id text, user_id text, kind text, items json, model text,
                                     version text, experiment text, variant text,
                                     latency_ms double precision, session_id text,
                                     created_at timestamptz)
"""

#: Bound values in one statement at most (SQLite allows 32766).
MAX_BOUND_VALUES = 32_000


def insert_impressions(session: Session, rows: Sequence[NewImpression]) -> int:
    """Write a batch of impressions with one statement; the background writer's call.

    Postgres: ``INSERT ... SELECT FROM json_to_recordset(batch)``; SQLite: ``INSERT ...
    VALUES (...), (...)`` (at most ``MAX_BOUND_VALUES // 11`` rows). Hand-written
    SQL because SQLAlchemy's compiler takes about 2 ms per 100 bound values
    (0.5 s for a batch of 250), CPU a serving process needs for requests.
    """
    if not rows:
        return 0
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        document = [
            {"id": r.id, "user_id": r.user_id, "kind": r.kind, "items": list(r.items),
             "model": r.model, "version": r.version, "experiment": r.experiment,
             "variant": r.variant, "latency_ms": r.latency_ms, "session_id": r.session_id,
             "created_at": as_utc(r.created_at).isoformat()}
            for r in rows
        ]  # fmt: skip
        connection.exec_driver_sql(_PG_INSERT_IMPRESSIONS, (json.dumps(document),))
        return len(rows)
    values = [
        (r.id, r.user_id, r.kind, json.dumps(list(r.items)), r.model, r.version, r.experiment,
         r.variant, r.latency_ms, r.session_id, as_utc(r.created_at))
        for r in rows
    ]  # fmt: skip
    if len(rows) * len(_IMPRESSION_COLUMNS) > MAX_BOUND_VALUES:
        raise ValueError(
            f"{len(rows)} impressions in one batch; at most "
            f"{MAX_BOUND_VALUES // len(_IMPRESSION_COLUMNS)}"
        )
    # SQLite keeps datetimes as text in SQLAlchemy's format, which reads and comparisons use.
    stamp = Impression.__table__.c.created_at.type._cached_bind_processor(connection.dialect)
    params: list[Any] = []
    for row in values:
        params.extend(row[:-1])
        params.append(stamp(row[-1]) if stamp is not None else row[-1])
    row_sql = "(" + ", ".join(["?"] * len(_IMPRESSION_COLUMNS)) + ")"
    connection.exec_driver_sql(
        f"INSERT INTO impressions ({', '.join(_IMPRESSION_COLUMNS)}) VALUES "
        + ", ".join([row_sql] * len(rows)),
        tuple(params),
    )
    return len(rows)


def recently_shown(session: Session, user_id: str, last: int) -> set[str]:
    """Item ids shown to ``user_id`` in their ``last`` newest impressions (index on
    ``(user_id, created_at)``)."""
    query = (
        select(Impression.items)
        .where(Impression.user_id == user_id)
        .order_by(Impression.created_at.desc(), Impression.id.desc())
        .limit(last)
    )
    return {item for items in session.execute(query).scalars() for item in items}


@dataclass(frozen=True)
class NamedList:
    """What attribution checks of an impression an event names: whose list it was (its
    user; an ad-hoc list's session apart, migration 0008) and the items it showed."""

    user_id: str | None
    session_id: str | None
    items: Sequence[str]


def existing_impressions(db: Session | Connection, ids: Sequence[str]) -> dict[str, NamedList]:
    """Of ``ids``, those that name an impression, each with its user, session and items
    (one primary-key read)."""
    if not ids:
        return {}
    rows = as_connection(db).execute(_EXISTING_QUERY, {"ids": list(set(ids))})
    return {id_: NamedList(user, session, items) for id_, user, session, items in rows}


def waiting_interactions(
    db: Session | Connection, rec_ids: Sequence[str]
) -> list[tuple[int, NewInteraction]]:
    """The logged, unattributed events that name one of ``rec_ids``, each with its row
    id, in id order and locked for update until the caller's transaction ends.

    A range scan of the partial index ``ix_interactions_waiting`` (migration 0013),
    whose predicate the query repeats so that both planners use it. The lock, taken in
    id order, is what keeps two late attributions of overlapping events (the list's
    replica and the event's, ``app.serving.late_attribution``) from deadlocking: the
    second waits for the first and then sees its rows attributed (Postgres re-checks a
    locked row's condition on its new version). SQLite has no row locks (nor needs them:
    one writer at a time), and its statement names the index (``INDEXED BY``): without
    statistics (``ANALYZE``, which nothing runs on an embedded database) SQLite chose
    the ``impression_id`` index for ``impression_id IS NULL``, which reads every event
    not attributed, most of the log. Postgres, with statistics, picks the partial one.
    """
    if not rec_ids:
        return []
    connection = as_connection(db)
    statement = _WAITING_QUERY if connection.dialect.name == "postgresql" else _WAITING_SQLITE
    rows = connection.execute(statement, {"ids": list(set(rec_ids))})
    return [
        (int(id_), NewInteraction(user, item, rating, as_utc(ts), kind, rec_id))
        for id_, user, item, rating, ts, kind, rec_id in rows
    ]


def attribute_waiting(db: Session | Connection, ids: Sequence[int]) -> set[int]:
    """Attribute the events ``ids`` to the list each names; the ids this statement
    attributed (``RETURNING``), which leaves out any that were attributed meanwhile, so
    that each event is counted once whoever attributes it."""
    if not ids:
        return set()
    rows = as_connection(db).execute(_ATTRIBUTE_WAITING, {"ids": list(ids)})
    return {int(id_) for (id_,) in rows}


def waiting_window_events(
    db: Session | Connection, user_ids: Sequence[str], earliest: datetime, latest: datetime
) -> list[tuple[int, NewInteraction]]:
    """The logged events of ``user_ids`` in ``[earliest, latest]`` (their ``ts``) that
    name no list and are not attributed, each with its row id, in id order.

    What late window attribution looks at (``app.serving.late_attribution``); the
    caller keeps the positive ones. A range scan of ``ix_interactions_user_id_ts`` per
    user, the index every read of a user's log uses: a partial index of these rows would
    hold most of the log (events without an id are most events, and few are ever
    attributed), a second copy of that index that every insert pays for, to skip the
    few attributed or id-naming rows of one user's window. SQLite names the index
    (``INDEXED BY``), for the reason ``waiting_interactions`` gives.
    """
    if not user_ids:
        return []
    connection = as_connection(db)
    postgres = connection.dialect.name == "postgresql"
    statement = _WINDOW_WAITING_QUERY if postgres else _WINDOW_WAITING_SQLITE
    params = {"users": list(set(user_ids)), "earliest": as_utc(earliest), "latest": as_utc(latest)}
    rows = connection.execute(statement, params)
    return [
        (int(id_), NewInteraction(user, item, rating, as_utc(ts), kind))
        for id_, user, item, rating, ts, kind in rows
    ]


def attribute_window(db: Session | Connection, choices: Sequence[tuple[int, str]]) -> set[int]:
    """Attribute each event (row id) of ``choices`` to its impression, unless it was
    attributed meanwhile; the ids this call attributed.

    One ``UPDATE`` per event, in id order: each takes its row's lock, so two late
    attributions of overlapping events lock in one order and cannot deadlock; the second
    waits, then finds the row attributed (Postgres re-checks ``impression_id IS NULL``
    on the row's new version) and leaves it, so each event is counted once.
    """
    connection = as_connection(db)
    done: set[int] = set()
    for row_id, impression_id in sorted(choices):
        result = connection.execute(
            _ATTRIBUTE_WINDOW, {"row_id": row_id, "impression": impression_id}
        )
        if result.rowcount == 1:
            done.add(row_id)
    return done


@dataclass(frozen=True)
class ShownList:
    """An impression of ``user_id`` at ``created_at`` that showed ``items``."""

    impression_id: str
    user_id: str
    items: Sequence[str]
    created_at: datetime


#: Most impressions of one user that attribution looks at in one window.
MAX_WINDOW_IMPRESSIONS = 1000


# The attribution and experiment-counting statements, built once: building a ``select``
# (coercing every clause, then its cache key) was the largest part of the interaction
# writer's time per group in a cProfile, for statements that differ only in their values.
# Table columns, not ORM attributes, so executing them skips the ORM's compile and
# loading steps too. ``expanding`` binds take a list for ``IN``.
_EXISTING_QUERY = select(
    _IMPRESSIONS.c.id, _IMPRESSIONS.c.user_id, _IMPRESSIONS.c.session_id, _IMPRESSIONS.c["items"]
).where(_IMPRESSIONS.c.id.in_(bindparam("ids", expanding=True)))
_WAITING_QUERY = (
    select(
        _INTERACTIONS.c.id,
        _INTERACTIONS.c.user_id,
        _INTERACTIONS.c.item_id,
        _INTERACTIONS.c.rating,
        _INTERACTIONS.c.ts,
        _INTERACTIONS.c.type,
        _INTERACTIONS.c.recommendation_id,
    )
    .where(
        _INTERACTIONS.c.recommendation_id.in_(bindparam("ids", expanding=True)),
        text(WAITING),  # the partial index's own predicate, word for word
    )
    .order_by(_INTERACTIONS.c.id)
    .with_for_update()
)
_WAITING_SQLITE = (
    text(
        "SELECT id, user_id, item_id, rating, ts, type, recommendation_id "
        "FROM interactions INDEXED BY ix_interactions_waiting "
        f"WHERE recommendation_id IN :ids AND {WAITING} ORDER BY id"
    )
    .bindparams(bindparam("ids", expanding=True, type_=String()))
    .columns(  # the columns' types read ``ts`` as the ORM does
        *(_INTERACTIONS.c[name] for name in ("id", "user_id", "item_id", "rating", "ts", "type")),
        _INTERACTIONS.c.recommendation_id,
    )
)
_ATTRIBUTE_WAITING = (
    update(_INTERACTIONS)
    .where(
        _INTERACTIONS.c.id.in_(bindparam("ids", expanding=True)),
        _INTERACTIONS.c.impression_id.is_(None),
    )
    .values(impression_id=_INTERACTIONS.c.recommendation_id)
    .returning(_INTERACTIONS.c.id)
)
_WINDOW_WAITING_COLUMNS = ("id", "user_id", "item_id", "rating", "ts", "type")
#: Events that name no list and are not attributed (late window attribution).
WINDOW_WAITING = "recommendation_id IS NULL AND impression_id IS NULL"
_WINDOW_WAITING_QUERY = (
    select(*(_INTERACTIONS.c[name] for name in _WINDOW_WAITING_COLUMNS))
    .where(
        _INTERACTIONS.c.user_id.in_(bindparam("users", expanding=True)),
        _INTERACTIONS.c.ts >= bindparam("earliest"),
        _INTERACTIONS.c.ts <= bindparam("latest"),
        text(WINDOW_WAITING),
    )
    .order_by(_INTERACTIONS.c.id)
)
_WINDOW_WAITING_SQLITE = (
    text(
        "SELECT id, user_id, item_id, rating, ts, type "
        "FROM interactions INDEXED BY ix_interactions_user_id_ts "
        f"WHERE user_id IN :users AND ts >= :earliest AND ts <= :latest AND {WINDOW_WAITING} "
        "ORDER BY id"
    )
    .bindparams(
        bindparam("users", expanding=True, type_=String()),
        bindparam("earliest", type_=_INTERACTIONS.c.ts.type),
        bindparam("latest", type_=_INTERACTIONS.c.ts.type),
    )
    .columns(*(_INTERACTIONS.c[name] for name in _WINDOW_WAITING_COLUMNS))
)
_ATTRIBUTE_WINDOW = (
    update(_INTERACTIONS)
    .where(_INTERACTIONS.c.id == bindparam("row_id"), _INTERACTIONS.c.impression_id.is_(None))
    .values(impression_id=bindparam("impression"))
)
_EXPERIMENT_QUERY = select(
    _IMPRESSIONS.c.id,
    _IMPRESSIONS.c.experiment,
    _IMPRESSIONS.c.variant,
    _IMPRESSIONS.c.model,
    _IMPRESSIONS.c.version,
    _IMPRESSIONS.c["items"],
).where(
    _IMPRESSIONS.c.id.in_(bindparam("ids", expanding=True)), _IMPRESSIONS.c.experiment.is_not(None)
)


def _window_statements() -> tuple[Select[str, str, list[str], datetime], ...]:
    """The attribution window's statement per dialect: at most ``per_user`` (bound) of
    each user's impressions in ``[earliest, latest]``, the newest (in no particular order).

    Postgres: one ``LATERAL`` range scan of ``(user_id, created_at)`` per user of the
    batch, its bounds written as row comparisons, ``(user_id, created_at) >= (user,
    earliest)``, which that index can use and ``ix_impressions_created_at`` cannot.
    The plain ``user_id IN (...) AND created_at BETWEEN ... ORDER BY created_at DESC
    LIMIT n`` it replaces let the planner walk ``ix_impressions_created_at`` backwards
    through every impression of the window, filtering on the user: on a table not yet
    analysed it takes that range for a row or two. Over one run of the serve
    benchmark's mix, 1,300-1,600 window queries read 11.7-15.1 million index entries
    (docs/performance.md, "What Postgres read for the mix"); the same range inside a
    ``LATERAL`` did it once per user. SQLite picks the composite index for the
    ``IN`` form (its planner has no such estimate to get wrong); ``row_number()`` gives
    it the same per-user limit.
    """
    shown = _IMPRESSIONS.c
    in_range = (shown.created_at >= bindparam("earliest"), shown.created_at <= bindparam("latest"))
    users = (
        func.unnest(bindparam("users", type_=ARRAY(String)))
        .table_valued("user_id")
        .render_derived(name="u")
    )
    per_user = (
        select(shown.id, shown["items"], shown.created_at)
        .where(
            shown.user_id == users.c.user_id,
            tuple_(shown.user_id, shown.created_at)
            >= tuple_(users.c.user_id, bindparam("earliest")),
            tuple_(shown.user_id, shown.created_at) <= tuple_(users.c.user_id, bindparam("latest")),
        )
        .order_by(shown.created_at.desc())
        .limit(bindparam("per_user"))
        .lateral("w")
    )
    lateral = select(
        per_user.c.id, users.c.user_id, per_user.c["items"], per_user.c.created_at
    ).select_from(users.join(per_user, true()))
    newest = func.row_number().over(partition_by=shown.user_id, order_by=shown.created_at.desc())
    ranked = (
        select(shown.id, shown.user_id, shown["items"], shown.created_at, newest.label("n"))
        .where(shown.user_id.in_(bindparam("users", expanding=True)), *in_range)
        .subquery()
    )
    numbered = select(ranked.c.id, ranked.c.user_id, ranked.c["items"], ranked.c.created_at).where(
        ranked.c.n <= bindparam("per_user")
    )
    return lateral, numbered


#: (Postgres, any other dialect)
_WINDOW_LATERAL, _WINDOW_NUMBERED = _window_statements()


def experiment_impressions(
    db: Session | Connection, ids: Sequence[str]
) -> list[tuple[str, str, str, str, str, list[str]]]:
    """Of ``ids``, the impressions of experiment lists: (id, experiment, variant, model,
    version, items) each."""
    if not ids:
        return []
    rows = as_connection(db).execute(_EXPERIMENT_QUERY, {"ids": list(set(ids))})
    return [(i, e or "", v or "", m, ver, items) for i, e, v, m, ver, items in rows]


def impressions_in_window(
    db: Session | Connection,
    user_ids: Sequence[str],
    earliest: datetime,
    latest: datetime,
    per_user: int = MAX_WINDOW_IMPRESSIONS,
) -> list[ShownList]:
    """Impressions of ``user_ids`` made in ``[earliest, latest]``, at most ``per_user``
    (the newest) of each user: range scans of ``(user_id, created_at)``."""
    if not user_ids:
        return []
    connection = as_connection(db)
    params = {
        "users": list(set(user_ids)),
        "earliest": as_utc(earliest),
        "latest": as_utc(latest),
        "per_user": per_user,
    }
    statement = _WINDOW_LATERAL if connection.dialect.name == "postgresql" else _WINDOW_NUMBERED
    rows = connection.execute(statement, params)
    return [ShownList(id_, user, items, as_utc(created)) for id_, user, items, created in rows]


def delete_impressions_before(session: Session, moment: datetime) -> int:
    """Delete impressions created before ``moment``; the count.

    An experiment's results are computed from its impressions, so those of the running
    experiment are kept whatever their age, and those of a stopped one until it has been
    stopped longer than the retention (``stopped_at`` before ``moment``): deleting them
    changed a long experiment's results and SRM while it ran, and a stopped one's the
    moment it stopped.
    """
    cutoff = as_utc(moment)
    still_counted = select(Experiment.name).where(
        or_(Experiment.running.is_(True), Experiment.stopped_at >= cutoff)
    )
    result = session.execute(
        delete(Impression).where(
            Impression.created_at < cutoff,
            or_(Impression.experiment.is_(None), Impression.experiment.not_in(still_counted)),
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- retrain jobs
# Business rules (who may claim, what a status means) live in ``app/retrain``;
# these functions are the statements. Every write a worker makes is fenced by
# ``JobFence``: it only touches the row while the worker still holds the lease.

#: Statuses of a job that may still run.
ACTIVE_JOB_STATUSES = ("queued", "running")
#: Keys of a running job's ``progress`` that count down (a tune job's search window);
#: stale once it ended.
COUNTDOWN_KEYS = ("search_until", "seconds_left")


def ended_progress(progress: dict[str, Any] | None, status: str) -> dict[str, Any]:
    """A job's ``progress`` once it ended as ``status``: that phase, and no countdown."""
    kept = {k: v for k, v in (progress or {}).items() if k not in COUNTDOWN_KEYS}
    return {**kept, "phase": status}


def released_progress(progress: dict[str, Any] | None) -> dict[str, Any]:
    """A job's ``progress`` once its worker handed it back (``release_job``): phase
    "queued", without the stopped attempt's countdown (``seconds_left``).

    Why: the row read "queued" while its progress still read the phase the attempt
    stopped in ("training", a tune job's seconds left), on the API and the dashboard.
    What the next attempt reads back from it stays (a tune job's ``cutoff`` and
    ``search_until``: a retry searches the same slice in the same window), and so
    does how far the stopped attempt got (``epoch`` of ``epochs``).
    """
    kept = {k: v for k, v in (progress or {}).items() if k != "seconds_left"}
    return {**kept, "phase": "queued"}


@dataclass(frozen=True)
class JobFence:
    """Which claim a worker holds: writes match ``id``, ``worker_id`` and ``attempts``."""

    job_id: int
    worker_id: str
    attempt: int


@dataclass(frozen=True)
class Takeover:
    """The attempt a claim took its job over from: one whose lease expired while running,
    never handed back (its worker died, hung past its time limit, or lost the database)."""

    worker_id: str | None
    attempt: int
    lease_expired_at: datetime  # the database's clock, as every lease time


@dataclass(frozen=True)
class Claim:
    """A claimed job, and the attempt it took over, if any (None: it was queued)."""

    job: RetrainJob
    taken_over: Takeover | None


@dataclass(frozen=True)
class NewJob:
    """A validated retrain request to record."""

    model: str
    params: dict[str, Any]
    data: str
    promote: str
    trigger: str
    max_attempts: int
    dedupe_key: str | None = None
    kind: str = "retrain"  # or "tune" (app/tune)


def insert_job(session: Session, job: NewJob, now: datetime) -> RetrainJob:
    """Stage a queued job; ``IntegrityError`` at flush if ``dedupe_key`` already exists."""
    row = RetrainJob(
        kind=job.kind,
        model=job.model,
        params=job.params,
        data=job.data,
        promote=job.promote,
        trigger=job.trigger,
        dedupe_key=job.dedupe_key,
        status="queued",
        attempts=0,
        max_attempts=job.max_attempts,
        created_at=as_utc(now),
        updated_at=as_utc(now),
    )
    session.add(row)
    session.flush()
    return row


#: Key of the transaction-scoped Postgres advisory lock that serialises the duplicate
#: check and insert of job requests, retrain and tune (``lock_job_requests``); any fixed
#: 64-bit number.
JOB_REQUEST_LOCK = 0x67656E7265630001


def lock_job_requests(session: Session) -> None:
    """Hold, until the transaction ends, the lock that one duplicate check and insert of a
    job request take, whatever its kind (``find_active_twin`` then ``insert_job``): two
    requests for the same job at once see each other, the second finds the first's row.

    Postgres: a transaction-level advisory lock (READ COMMITTED would let both check
    before either inserted). SQLite: a write, which takes the database's one write lock
    (a read first would only begin a snapshot, and both would pass).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(JOB_REQUEST_LOCK)))
    else:
        session.execute(update(RetrainJob).where(RetrainJob.id == -1).values(id=RetrainJob.id))


def find_active_twin(session: Session, job: NewJob) -> RetrainJob | None:
    """The oldest queued or running job of ``job``'s kind that would do the same work: the
    same model, settings (``params``, as JSON, key order aside), data and promotion. A tune
    job's ``params`` hold its whole request (``app.tune.jobs.TuneRequest.to_params``)."""
    query = (
        select(RetrainJob)
        .where(
            RetrainJob.kind == job.kind,
            RetrainJob.model == job.model,
            RetrainJob.data == job.data,
            RetrainJob.promote == job.promote,
            RetrainJob.status.in_(("queued", "running")),
        )
        .order_by(RetrainJob.id)
    )
    wanted = _canonical(job.params)
    for row in session.execute(query).scalars():
        if _canonical(row.params) == wanted:
            return row
    return None


def _canonical(value: Any) -> str:
    """A JSON value as one text: key order does not count, ``5`` and ``5.0`` do."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def get_job(session: Session, job_id: int) -> RetrainJob | None:
    """The job row as the database has it now (never a stale identity-map copy)."""
    query = select(RetrainJob).where(RetrainJob.id == job_id)
    return session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()


def list_jobs(
    session: Session,
    *,
    status: str | None = None,
    model: str | None = None,
    kind: str | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int = 50,
) -> list[RetrainJob]:
    """Newest jobs first by (``created_at``, ``id``), optionally of one status, model
    and/or kind; ``after``: only the jobs that sort after this key (the keyset page
    cursor, ``app.retrain.job_cursor``), a row-value comparison both databases bound an
    index scan with (``ix_retrain_jobs_created_at_id``)."""
    query = select(RetrainJob)
    if status is not None:
        query = query.where(RetrainJob.status == status)
    if model is not None:
        query = query.where(RetrainJob.model == model)
    if kind is not None:
        query = query.where(RetrainJob.kind == kind)
    if after is not None:
        created_at, job_id = after
        key = tuple_(RetrainJob.created_at, RetrainJob.id)
        bound = tuple_(
            literal(as_utc(created_at), RetrainJob.created_at.type),
            literal(job_id, RetrainJob.id.type),
        )
        query = query.where(key < bound)
    query = query.order_by(RetrainJob.created_at.desc(), RetrainJob.id.desc()).limit(limit)
    return list(session.execute(query).scalars())


def database_time(session: Session) -> datetime:
    """The database's clock now (aware UTC): what job leases are compared with."""
    return as_utc(session.execute(select(database_now())).scalar_one())


def _claimable() -> ColumnElement[bool]:
    """Queued, or running under a lease that expired with attempts left (its worker died);
    expired by the database's clock, as every lease time (``app.core.db_time``)."""
    return or_(
        RetrainJob.status == "queued",
        and_(
            RetrainJob.status == "running",
            RetrainJob.lease_expires_at < database_now(),
            RetrainJob.attempts < RetrainJob.max_attempts,
        ),
    )


def _fenced(fence: JobFence, status: str = "running") -> ColumnElement[bool]:
    return and_(
        RetrainJob.id == fence.job_id,
        RetrainJob.worker_id == fence.worker_id,
        RetrainJob.attempts == fence.attempt,
        RetrainJob.status == status,
    )


def _update_job(session: Session, where: ColumnElement[bool], **values: Any) -> int:
    statement = update(RetrainJob).where(where).values(**values)
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return int(result.rowcount)  # type: ignore[attr-defined]


def claim_job(session: Session, worker_id: str, lease_s: float) -> RetrainJob | None:
    """Claim the oldest claimable job for ``worker_id`` under a lease of ``lease_s``
    seconds from the database's now; None when there is none (``claim``)."""
    claimed = claim(session, worker_id, lease_s)
    return None if claimed is None else claimed.job


def claim(session: Session, worker_id: str, lease_s: float) -> Claim | None:
    """``claim_job``, also saying which attempt it took over (``Takeover``), read with the
    claim: only the claiming worker knows that an attempt ended without a word.

    Postgres: ``SELECT ... FOR UPDATE SKIP LOCKED`` lets concurrent workers
    pass over a row another one is claiming. SQLite renders no FOR UPDATE;
    there the conditional UPDATE (re-checking claimability, rowcount 1) is
    what makes the claim exclusive, and a lost race tries the next row.
    """
    for _ in range(5):
        found = session.execute(
            select(
                RetrainJob.id,
                RetrainJob.status,
                RetrainJob.worker_id,
                RetrainJob.attempts,
                RetrainJob.lease_expires_at,
            )
            .where(_claimable())
            .order_by(RetrainJob.created_at, RetrainJob.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).one_or_none()
        if found is None:
            return None
        candidate, status, holder, attempt, expired = found
        claimed = _update_job(
            session,
            and_(RetrainJob.id == candidate, _claimable()),
            status="running",
            worker_id=worker_id,
            attempts=RetrainJob.attempts + 1,
            lease_expires_at=database_now(lease_s),
            started_at=func.coalesce(RetrainJob.started_at, database_now()),
            updated_at=database_now(),
        )
        if claimed == 1:
            job = get_job(session, candidate)
            assert job is not None, "a row this transaction just claimed"
            taken = (
                Takeover(holder, attempt, as_utc(expired))
                if status == "running" and expired is not None
                else None
            )
            return Claim(job, taken)
    return None


def unfinished_job_starts(session: Session) -> list[tuple[datetime | None, Any]]:
    """(``started_at``, ``progress``) of every job, retrain or tune, still queued or
    running: each may yet save a version from the log it read (or will read)."""
    rows = session.execute(
        select(RetrainJob.started_at, RetrainJob.progress).where(
            RetrainJob.status.in_(("queued", "running"))
        )
    ).all()
    return [(None if at is None else as_utc(at), progress) for at, progress in rows]


def renew_job_lease(session: Session, fence: JobFence, lease_s: float) -> bool:
    """Extend the lease to ``lease_s`` seconds from the database's now; False when the
    worker no longer holds the job (taken or cancelled)."""
    values = {"lease_expires_at": database_now(lease_s), "updated_at": database_now()}
    return _update_job(session, _fenced(fence), **values) == 1


def write_job_progress(
    session: Session, fence: JobFence, now: datetime, progress: dict[str, Any], log_tail: str
) -> bool:
    """Record progress and the log tail; False when the worker no longer holds the job."""
    return (
        _update_job(
            session, _fenced(fence), progress=progress, log_tail=log_tail, updated_at=as_utc(now)
        )
        == 1
    )


def finish_job(
    session: Session,
    fence: JobFence,
    now: datetime,
    *,
    status: str,
    log_tail: str,
    result_version: str | None = None,
    promoted: bool | None = None,
    gate: dict[str, Any] | None = None,
    error: str | None = None,
    progress: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> bool:
    """Move a held job to a final status; False (nothing written) if the lease was lost."""
    return (
        _update_job(
            session,
            _fenced(fence),
            status=status,
            result=result,
            search_until=None,
            log_tail=log_tail,
            progress=progress,
            result_version=result_version,
            promoted=promoted,
            gate=gate,
            error=error,
            lease_expires_at=None,
            finished_at=as_utc(now),
            updated_at=as_utc(now),
        )
        == 1
    )


def record_cancelled_result(
    session: Session,
    fence: JobFence,
    now: datetime,
    *,
    log_tail: str,
    result_version: str | None = None,
    promoted: bool | None = None,
    gate: dict[str, Any] | None = None,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> bool:
    """Write what the held attempt did onto its job, cancelled after the work was done
    (a cancel that raced with ``finish_job``); False unless this attempt's job is
    ``cancelled``. The status stays: the cancel was acknowledged."""
    return (
        _update_job(
            session,
            _fenced(fence, "cancelled"),
            result=result,
            log_tail=log_tail,
            result_version=result_version,
            promoted=promoted,
            gate=gate,
            error=error,
            updated_at=as_utc(now),
        )
        == 1
    )


def write_cancelled_log(session: Session, fence: JobFence, now: datetime, log_tail: str) -> bool:
    """Write the held attempt's log tail onto its job, cancelled while it ran; False unless
    this attempt's job is ``cancelled``. The attempt's last lines (that it stopped, and
    why) are written after the cancel, which fences every ``running`` write out."""
    where = _fenced(fence, "cancelled")
    return _update_job(session, where, log_tail=log_tail, updated_at=as_utc(now)) == 1


def set_search_window(
    session: Session, fence: JobFence, now: datetime, until: datetime | None
) -> bool:
    """Open (``until``: other workers may join the held tune job's search until then) or
    close (None) its search window; False when the worker no longer holds the job."""
    values = {"search_until": None if until is None else as_utc(until)}
    return _update_job(session, _fenced(fence), updated_at=as_utc(now), **values) == 1


def joinable_tune_job(session: Session, worker_id: str) -> RetrainJob | None:
    """The oldest running tune job another worker leads whose search is still open, by
    the database's clock: its lead set the window by it (``app.core.db_time``)."""
    query = (
        select(RetrainJob)
        .where(
            RetrainJob.kind == "tune",
            RetrainJob.status == "running",
            RetrainJob.search_until > database_now(),
            RetrainJob.worker_id != worker_id,
        )
        .order_by(RetrainJob.created_at, RetrainJob.id)
        .limit(1)
    )
    return session.execute(query).scalar_one_or_none()


def release_job(session: Session, fence: JobFence, now: datetime, log_tail: str) -> bool:
    """Hand a held job back to the queue (worker shutting down); False if not held.

    The attempt is given back (``attempts - 1``): ``max_attempts`` bounds the
    workers that died on a job, and a rolling restart must not fail it. The
    fence stays unique, since it also names the worker, and a worker releases
    a job only as it stops. Its progress says "queued" (``released_progress``).
    """
    released = (
        _update_job(
            session,
            _fenced(fence),
            status="queued",
            attempts=RetrainJob.attempts - 1,
            worker_id=None,
            lease_expires_at=None,
            log_tail=log_tail,
            updated_at=as_utc(now),
        )
        == 1
    )
    if released:  # the row is this transaction's until commit (as in ``_end_progress``)
        query = select(RetrainJob.progress).where(RetrainJob.id == fence.job_id)
        progress = session.execute(query).scalar_one_or_none()
        _update_job(session, RetrainJob.id == fence.job_id, progress=released_progress(progress))
    return released


def _end_progress(session: Session, job_id: int, status: str) -> None:
    """Mark the progress of a job this transaction just ended (``ended_progress``).

    After the status write: the row is ours until commit, and its worker's
    writes are fenced on ``status = 'running'``, so none lands in between.
    """
    query = select(RetrainJob.progress).where(RetrainJob.id == job_id)
    progress = session.execute(query).scalar_one_or_none()
    _update_job(session, RetrainJob.id == job_id, progress=ended_progress(progress, status))


def cancel_job(session: Session, job_id: int, now: datetime) -> bool:
    """Cancel a queued or running job (closing a tune job's search window); False if it
    does not exist or already ended."""
    where = and_(RetrainJob.id == job_id, RetrainJob.status.in_(ACTIVE_JOB_STATUSES))
    done = (
        _update_job(
            session,
            where,
            status="cancelled",
            search_until=None,
            lease_expires_at=None,
            finished_at=as_utc(now),
            updated_at=as_utc(now),
        )
        == 1
    )
    if done:
        _end_progress(session, job_id, "cancelled")
    return done


def fail_exhausted_jobs(session: Session, error: str) -> list[int]:
    """Fail running jobs whose lease expired (the database's clock) with no attempts left;
    returns their ids."""
    where = and_(
        RetrainJob.status == "running",
        RetrainJob.lease_expires_at < database_now(),
        RetrainJob.attempts >= RetrainJob.max_attempts,
    )
    exhausted = session.execute(
        select(
            RetrainJob.id,
            RetrainJob.worker_id,
            RetrainJob.attempts,
            RetrainJob.lease_expires_at,
            RetrainJob.log_tail,
        )
        .where(where)
        .with_for_update(skip_locked=True)
    ).all()
    failed = []
    for job_id, worker_id, attempts, expired_at, log_tail in exhausted:
        if _update_job(
            session,
            and_(RetrainJob.id == job_id, where),
            status="failed",
            error=error,
            log_tail=_with_line(log_tail, _exhausted_line(worker_id, attempts, expired_at)),
            search_until=None,
            lease_expires_at=None,
            finished_at=database_now(),
            updated_at=database_now(),
        ):
            _end_progress(session, job_id, "failed")
            failed.append(job_id)
    return failed


def log_time(moment: datetime) -> str:
    """A time as a job's log writes it: UTC, to the second, and saying so ("14:05:09Z").
    One form for the lines workers stamp and the times they name (lease expiries)."""
    return as_utc(moment).strftime("%H:%M:%SZ")


def _exhausted_line(worker_id: str | None, attempts: int, expired_at: datetime | None) -> str:
    """The log's last line for a job the exhaustion sweep fails: its tail ended with the
    last attempt's lines, nothing saying why they stopped or that no attempt was left
    (the error says "see the log tail")."""
    expiry = "" if expired_at is None else f" at {log_time(expired_at)}"
    return (
        f"attempt {attempts} (worker {worker_id}): its lease expired{expiry} without a "
        "hand-back (the worker died or lost the database); no attempts left: the job failed"
    )


def _with_line(log_tail: str | None, line: str) -> str:
    """``log_tail`` with ``line`` added, stamped as the workers stamp theirs (UTC)."""
    stamped = f"{log_time(datetime.now(UTC))} {line}"
    return stamped if not log_tail else f"{log_tail}\n{stamped}"


def note_failed_job_version(
    session: Session, job_id: int, version: str, promoted: bool, error: str
) -> bool:
    """Name, on a job the exhaustion sweep failed, the version one of its attempts saved
    (and whether it is production); False unless the job is failed without a version."""
    where = and_(
        RetrainJob.id == job_id,
        RetrainJob.status == "failed",
        RetrainJob.result_version.is_(None),
    )
    return _update_job(session, where, result_version=version, promoted=promoted, error=error) == 1


def latest_job_created_at(session: Session, model: str) -> datetime | None:
    """When the newest job of ``model`` was created (any trigger, any status)."""
    query = select(func.max(RetrainJob.created_at)).where(RetrainJob.model == model)
    value = session.execute(query).scalar_one_or_none()
    return None if value is None else as_utc(value)


# --------------------------------------------------------------------------- item catalog


@dataclass(frozen=True)
class NewItem:
    """An item to add or replace in the catalog (already validated by ``app.catalog``)."""

    item_id: str
    title: str | None
    text: str | None
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ItemRow:
    """A catalog row as the service reads it (times in UTC)."""

    item_id: str
    title: str | None
    text: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    change_epoch: int | None = None  # None: written before migration 0009
    removed_at: datetime | None = None  # set: removed from the catalog (migration 0010)


def _item_row(item: Item) -> ItemRow:
    return ItemRow(
        item_id=item.item_id,
        title=item.title,
        text=item.text,
        attributes=dict(item.attributes or {}),
        created_at=as_utc(item.created_at),
        updated_at=as_utc(item.updated_at),
        change_epoch=item.change_epoch,
        removed_at=None if item.removed_at is None else as_utc(item.removed_at),
    )


def get_item(session: Session, item_id: str) -> ItemRow | None:
    """The catalog row of ``item_id``, or None."""
    item = session.get(Item, item_id)
    return None if item is None else _item_row(item)


#: Ids per lookup of stored items: Postgres takes at most 65,535 parameters a statement,
#: and an import of more rows than that failed ("number of parameters must be between 0
#: and 65535") before it wrote anything.
ITEM_LOOKUP_CHUNK = 10_000


def upsert_items(session: Session, rows: Sequence[NewItem], now: datetime) -> dict[str, str]:
    """Insert or replace ``rows`` (distinct ids); per id "created", "updated", "restored"
    or "unchanged".

    A row equal to what is stored keeps its ``updated_at`` and ``change_epoch``, so
    re-running an import does not make every server re-score the same texts. Writing a
    removed item (``remove_items``) restores it ("restored"), whatever its content.

    The rows written carry a placeholder epoch of this transaction's own (negative, so
    no server's poll ever matches it); the last statements take the next catalog epoch
    and put it on them (``_stamp_catalog_change``). From then until the caller's commit
    every other catalog writer waits on the epoch's row lock, so the caller must commit
    (or roll back) right after this returns.
    """
    stamp = as_utc(now)
    pending = -1 - secrets.randbelow(2**62)
    ids = [r.item_id for r in rows]
    existing = {
        item.item_id: item
        for start in range(0, len(ids), ITEM_LOOKUP_CHUNK)
        for item in session.scalars(
            select(Item).where(Item.item_id.in_(ids[start : start + ITEM_LOOKUP_CHUNK]))
        )
    }
    outcome: dict[str, str] = {}
    for row in rows:
        item = existing.get(row.item_id)
        if item is None:
            session.add(
                Item(
                    item_id=row.item_id,
                    title=row.title,
                    text=row.text,
                    attributes=row.attributes,
                    created_at=stamp,
                    updated_at=stamp,
                    change_epoch=pending,
                )
            )
            outcome[row.item_id] = "created"
        elif item.removed_at is None and (item.title, item.text, item.attributes) == (
            row.title,
            row.text,
            row.attributes,
        ):
            outcome[row.item_id] = "unchanged"
        else:
            outcome[row.item_id] = "updated" if item.removed_at is None else "restored"
            item.title, item.text, item.attributes = row.title, row.text, row.attributes
            item.removed_at = None
            item.updated_at = stamp
            item.change_epoch = pending
    session.flush()
    if any(result != "unchanged" for result in outcome.values()):
        _stamp_catalog_change(session, pending)
    return outcome


def remove_items(session: Session, ids: Sequence[str], now: datetime) -> dict[str, str]:
    """Mark ``ids`` (distinct) removed from the catalog; per id "removed", "already_removed"
    or "unknown" (not in the catalog: nothing is written for it).

    A soft removal (``Item.removed_at``, migration 0010), stamped with the next catalog
    epoch like any change, so every server's poll picks it up. An item already removed
    keeps its ``removed_at`` and epoch: removing it again changes nothing. One
    ``UPDATE ... WHERE removed_at IS NULL`` per chunk: of two removals of one id at
    once, the second waits on the first's row lock and then finds it removed, so the
    item is stamped once. The caller commits right after, as for ``upsert_items``.
    """
    return _set_removal(session, ids, now, remove=True)


def restore_items(session: Session, ids: Sequence[str], now: datetime) -> dict[str, str]:
    """Restore removed ``ids`` (distinct) as they are stored; per id "restored",
    "not_removed" or "unknown" (not in the catalog: nothing is written for it).

    ``remove_items``'s inverse, and like it one ``UPDATE ... WHERE removed_at IS NOT
    NULL`` per chunk that touches the removal alone: title, text and attributes stay
    what the row holds at that moment. Why not a PUT of the stored content (the
    dashboard's Restore did that): its read and its write were two transactions, so a
    PUT or an import landing between them was overwritten by the content read before
    it. The caller commits right after, as for ``upsert_items``.
    """
    return _set_removal(session, ids, now, remove=False)


def _set_removal(
    session: Session, ids: Sequence[str], now: datetime, remove: bool
) -> dict[str, str]:
    """``remove_items`` (``remove``) or ``restore_items``: one conditional ``UPDATE`` per
    chunk of the rows whose removal changes, marked with a pending epoch, then a read of
    which rows carry the mark (changed here) and which do not (already so)."""
    stamp = as_utc(now)
    pending = -1 - secrets.randbelow(2**62)
    changed, unchanged = ("removed", "already_removed") if remove else ("restored", "not_removed")
    to_change = Item.removed_at.is_(None) if remove else Item.removed_at.is_not(None)
    outcome: dict[str, str] = {}
    for start in range(0, len(ids), ITEM_LOOKUP_CHUNK):
        chunk = list(ids[start : start + ITEM_LOOKUP_CHUNK])
        session.execute(
            update(Item)
            .where(Item.item_id.in_(chunk), to_change)
            .values(removed_at=stamp if remove else None, updated_at=stamp, change_epoch=pending)
            .execution_options(synchronize_session=False)
        )
        found = session.execute(
            select(Item.item_id, Item.change_epoch).where(Item.item_id.in_(chunk))
        )
        for item_id, epoch in found:
            outcome[item_id] = changed if epoch == pending else unchanged
    if changed in outcome.values():
        _stamp_catalog_change(session, pending)
    return {item_id: outcome.get(item_id, "unknown") for item_id in ids}


def _stamp_catalog_change(session: Session, pending: int) -> int:
    """Take the next catalog epoch and give it to this transaction's rows (those marked
    ``pending``); returns it.

    Why servers then miss no change (``items_changed_since``): the increment locks the
    epoch's row until this transaction ends, and a writer waiting on that lock reads
    the committed value once it gets it (Postgres re-reads the updated row under READ
    COMMITTED; SQLite has one writer at a time). So epochs are handed out in commit
    order, and the rows of an epoch become visible together, at its commit: a reader
    whose snapshot holds epoch N holds every committed epoch below N, and anything
    committed after its snapshot carries an epoch above every one it saw. Neither the
    transaction's length nor the writers' clocks play a part. The lock is held for two
    statements and the commit, not for the writes before them, so a long import does
    not hold back a PUT of another item.

    The stamp updates by the placeholder (index), which only this transaction wrote, so
    it never waits on another writer's rows while it holds the epoch's lock.
    """
    epoch = session.execute(
        update(CatalogEpoch)
        .where(CatalogEpoch.id == 1)
        .values(value=CatalogEpoch.value + 1)
        .returning(CatalogEpoch.value)
    ).scalar_one()
    session.execute(
        update(Item)
        .where(Item.change_epoch == pending)
        .values(change_epoch=epoch)
        .execution_options(synchronize_session=False)
    )
    return int(epoch)


def claim_attribute_kinds(session: Session, kinds: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """Record ``kinds`` (attribute -> kind) for the attributes the catalog has no kind of
    yet, and return the kinds recorded for every one of them; in the caller's transaction.

    ``INSERT ... ON CONFLICT DO NOTHING`` first: on Postgres an insert that meets
    another transaction's uncommitted row for the same name waits until that one
    commits (and then does nothing) or rolls back (and then inserts), and on SQLite the
    insert takes the database's write lock, so the read after it sees the kind that won
    and two writers can never both record theirs. Rows are only ever inserted, so what
    the read returns stays true until the caller commits: it needs no row lock. Names
    are inserted in sorted order, so two writers claiming the same names cannot deadlock.
    A primary-key probe per name: the cost does not grow with the catalog.
    """
    if not kinds:
        return {}
    rows = [{"name": name, "kind": kind} for name, kind in sorted(kinds.items())]
    dialect = session.get_bind().dialect.name
    claim = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(AttributeKind)
    session.execute(claim.values(rows).on_conflict_do_nothing(index_elements=["name"]))
    held = session.execute(
        select(AttributeKind.name, AttributeKind.kind).where(AttributeKind.name.in_(list(kinds)))
    )
    return {name: frozenset(kind.split()) for name, kind in held}


def attribute_kinds(session: Session) -> dict[str, frozenset[str]]:
    """Every attribute the catalog has recorded a kind for (``claim_attribute_kinds``),
    held by some item or not: rules resolve against these, so a rule on an attribute
    that no item holds any more answers (nothing matches) rather than a 422. One small
    table (a row per attribute name, never per item)."""
    held = session.execute(select(AttributeKind.name, AttributeKind.kind))
    return {name: frozenset(kind.split()) for name, kind in held}


def catalog_epoch(session: Session) -> int:
    """The newest committed catalog epoch: every change committed after this read carries
    a greater one (``_stamp_catalog_change``)."""
    return int(session.execute(select(CatalogEpoch.value).where(CatalogEpoch.id == 1)).scalar_one())


def items_after(session: Session, after_id: str = "", limit: int = 1000) -> list[ItemRow]:
    """Catalog rows whose id sorts after ``after_id``, by id: the whole catalog, a page
    at a time."""
    query = select(Item).where(Item.item_id > after_id).order_by(Item.item_id).limit(limit)
    return [_item_row(item) for item in session.scalars(query)]


def items_changed_since(
    session: Session, epoch: int, after_id: str | None = None, limit: int = 1000
) -> list[ItemRow]:
    """Catalog rows changed after the keyset ``(epoch, after_id)``, oldest change first;
    ``after_id`` None: the rows of epochs above ``epoch``.

    Ordered by ``(change_epoch, item_id)`` so a caller pages through any number
    of rows with the last row's pair as the next keyset. A change committed later
    than this read carries a greater epoch than any row it returns, so a keyset
    taken from it never passes over a change (``_stamp_catalog_change``).
    """
    if after_id is None:
        query = select(Item).where(Item.change_epoch > epoch)
    else:
        query = select(Item).where(
            Item.change_epoch >= epoch,
            or_(Item.change_epoch > epoch, Item.item_id > after_id),
        )
    query = query.order_by(Item.change_epoch, Item.item_id).limit(limit)
    return [_item_row(item) for item in session.scalars(query)]


# --------------------------------------------------------------------------- erased users


@dataclass(frozen=True)
class ErasureRow:
    """One row of ``erased_users``: who was erased, when, and the erasure's epoch."""

    user_id: str
    erased_at: datetime
    epoch: int


def erase_users(
    session: Session, user_ids: Sequence[str], clock: Callable[[], datetime]
) -> tuple[dict[str, int], datetime]:
    """Delete every logged row of ``user_ids`` (distinct) and record their erasure under the
    next erasure epoch; returns the rows deleted per table and the erasure's time. The
    caller commits.

    The time is read from ``clock`` after the deletes, just before the commit: serving
    takes a version whose training read of the log began more than a margin after it
    to hold none of the erased rows (``app.serving.erased.predates``), and a time read
    before the transaction was as old as the transaction was long (its locks may wait
    on another erasure), so a job that read the log while a long erasure ran counted
    as reading after it.

    The tables holding per-user rows: ``interactions`` and ``impressions`` (experiments
    assign users by a hash, nothing stored; jobs and sessions hold no user ids). Each
    erasure takes the next epoch, handed out in commit order so that a server polling
    ``epoch`` above the newest it read misses none (``erasures_since``): on Postgres the
    table lock (self-conflicting, readers are not blocked) orders erasures, and the
    ``max`` read after it is taken sees every erasure committed before. The lock is
    taken first, so two erasures of one user never deadlock on its rows. Then a share
    lock on ``interactions``, held to the commit: the delete reads the rows committed
    before it began, and an interaction write committed after that (acknowledged before
    the erasure ended) outlived the erasure; now a write waits until the erasure
    commits (milliseconds; the writes are single statements, so the lock never waits
    long for them) and is data logged after it. ``impressions`` needs no lock: every
    server deletes those created up to the erasure at its poll (``app.users.sync``),
    and the retention's long deletes there would hold the erasure up. On SQLite the
    ``max`` is read after the deletes: a read alone starts no transaction there (the
    driver begins one at the first write), so two erasures read before either wrote
    took the same epoch, and a poll past the first one's user passed over the second's
    if its id sorted lower; the first delete takes the database's write lock, which the
    transaction then holds until its commit.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE erased_users IN SHARE ROW EXCLUSIVE MODE"))
        session.execute(text("LOCK TABLE interactions IN SHARE MODE"))
    counts = {"interactions": 0, "impressions": 0}
    chunks = [
        list(user_ids[start : start + ITEM_LOOKUP_CHUNK])
        for start in range(0, len(user_ids), ITEM_LOOKUP_CHUNK)
    ]
    for chunk in chunks:
        for name, table in (("interactions", Interaction), ("impressions", Impression)):
            deleted = session.execute(
                delete(table)
                .where(table.user_id.in_(chunk))
                .execution_options(synchronize_session=False)
            )
            counts[name] += int(deleted.rowcount or 0)  # type: ignore[attr-defined]
    epoch = int(session.execute(select(func.coalesce(func.max(ErasedUser.epoch), 0))).scalar_one())
    epoch += 1
    stamp = as_utc(clock())
    for chunk in chunks:
        session.execute(
            delete(ErasedUser)
            .where(ErasedUser.user_id.in_(chunk))
            .execution_options(synchronize_session=False)
        )
        session.execute(
            insert(ErasedUser),
            [{"user_id": u, "erased_at": stamp, "epoch": epoch} for u in chunk],
        )
    return counts, stamp


def delete_impressions_until(session: Session, until: Sequence[tuple[str, datetime]]) -> int:
    """Delete each (user, moment)'s impressions created at or before the moment; returns
    how many. For impressions queued by a server before an erasure and written after it
    (``app.users.sync``)."""
    deleted = 0
    for user_id, moment in until:
        result = session.execute(
            delete(Impression)
            .where(Impression.user_id == user_id, Impression.created_at <= as_utc(moment))
            .execution_options(synchronize_session=False)
        )
        deleted += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return deleted


def erasures_since(
    session: Session, epoch: int, after_id: str | None = None, limit: int = 1000
) -> list[ErasureRow]:
    """Erasures after the keyset ``(epoch, after_id)``, oldest first (``after_id`` None:
    those of epochs above ``epoch``); ``epoch`` -1 with None reads the whole table.

    An erasure committed after this read carries a greater epoch than every row it
    returns (``erase_users``), so a keyset taken from it never passes over one.
    """
    if after_id is None:
        query = select(ErasedUser).where(ErasedUser.epoch > epoch)
    else:
        query = select(ErasedUser).where(
            ErasedUser.epoch >= epoch,
            or_(ErasedUser.epoch > epoch, ErasedUser.user_id > after_id),
        )
    query = query.order_by(ErasedUser.epoch, ErasedUser.user_id).limit(limit)
    return [
        ErasureRow(row.user_id, as_utc(row.erased_at), int(row.epoch))
        for row in session.scalars(query)
    ]


def delete_erasures(session: Session, erasures: Sequence[tuple[str, int]]) -> int:
    """Delete the records of these (user, epoch) erasures; returns how many went. A user
    erased again since holds a newer epoch, and that record stays (``app.users.prune``).
    The caller commits, and never passes the table's newest epoch: the next erasure takes
    the highest epoch plus one, and a poll's keyset past that epoch would pass over it.
    """
    deleted = 0
    for start in range(0, len(erasures), ITEM_LOOKUP_CHUNK):
        chunk = erasures[start : start + ITEM_LOOKUP_CHUNK]
        result = session.execute(
            delete(ErasedUser)
            .where(tuple_(ErasedUser.user_id, ErasedUser.epoch).in_(chunk))
            .execution_options(synchronize_session=False)
        )
        deleted += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return deleted


# --------------------------------------------------------------------------- dashboard sessions


def revoke_dashboard_session(session: Session, session_id: str, expires_at: datetime) -> None:
    """Record ``session_id`` as ended until ``expires_at`` (its cookie's own expiry), and
    forget revocations whose cookies have expired anyway. Logging out twice is harmless."""
    now = datetime.now(UTC)
    session.execute(delete(RevokedDashboardSession).where(RevokedDashboardSession.expires_at < now))
    if session.get(RevokedDashboardSession, session_id) is None:
        session.add(RevokedDashboardSession(session_id=session_id, expires_at=as_utc(expires_at)))


def dashboard_session_revoked(session: Session, session_id: str) -> bool:
    """Whether ``session_id`` was ended by a logout (a primary-key lookup)."""
    return session.get(RevokedDashboardSession, session_id) is not None
