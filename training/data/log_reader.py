"""Read the service's own interaction log (table ``interactions``) for retraining.

Schema (docs/internals.md, "Database"): ``id`` bigint pk, ``user_id``
varchar(256), ``item_id`` varchar(256), ``rating`` float null, ``ts``
timestamptz (event time), ``created_at`` timestamptz (arrival time).

The table is reflected by name with SQLAlchemy Core, never imported from
``app``: training must run where the web service's code is not installed, and
the migration, not a Python class, is the schema's source of truth.

``until`` is the data cutoff of the version about to be trained, taken by
``log_cutoff``: the database's clock less a commit margin, so that no row the
read misses is dated at or before it (``COMMIT_MARGIN``). Serving
treats a logged event as *after* a cutoff when its event time **or** its
arrival time is later (a late event with an old timestamp was not in the
training data), so the training side takes exactly the complement: both
times at or before ``until``. Together they cover every logged event once;
the rule is ``training.data.cutoff``.

A missing rating is an implicit interaction, read as 1.0; the result is
``explicit=False`` only when no rating at all is present.

``ratings_only`` is the read for a rating model (its task is ratings:
``training.models.trains_on_ratings``, ``genrec tune --task ratings``): when
the log holds an explicit rating, a row without one (a click, a typed event
without a rating) is no rating and is left out, so it is neither trained nor
validated on as a rating of 1.0 (or of its type's weight), the bottom of a 1-5
scale. A log with no rating at all is read as without it (typed events as
their weights), there being no ratings to prefer. Top-k models read every row.

Typed events (column ``type``, migration 0004) are read through
``event_weights`` (type -> training weight; the service passes its
``GENREC_EVENT_TYPES``, plain values): a type with a weight <= 0 (negative
feedback such as ``dislike``, or a type not worth training on) is left out, so
negative feedback never becomes a positive, whatever rating it carries; a type
the weights do not name is left out too (its meaning is unknown here). A kept
typed event without a rating is read as its weight; one with a rating keeps
its rating (rating models train on ratings). Untyped rows read as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import MetaData, Table, create_engine, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from training.data.cutoff import in_training
from training.data.db_time import database_now
from training.data.errors import DataError
from training.data.files import build_interactions, datetimes_to_seconds
from training.data.interactions import Interactions
from training.passwords import masked_url, without_password

TABLE = "interactions"
REQUIRED_COLUMNS = ("user_id", "item_id", "rating", "ts")
#: Rows fetched per round trip; bounds memory on the driver side for a big log.
BATCH_ROWS = 100_000
#: How far before the database's now a log read's cutoff lies (``log_cutoff``). A row's
#: ``created_at`` is the database's clock when its write *starts* (Postgres ``now()``,
#: the transaction's start); the read sees it only once it *commits*. A row stamped
#: before the cutoff but committed after the read's snapshot would be missed by the read
#: and, its times being at or before the cutoff, skipped by serving's fold-in too: lost
#: to both until the next version. Group commit and an erasure's share lock on
#: ``interactions`` (writes wait for its commit) stretch a write from milliseconds to
#: seconds; the margin is far longer than any write transaction, so every row stamped at
#: or before the cutoff has committed before the read begins. Rows stamped within the
#: margin are left to serving's fold-in, which is correct by the rule
#: (``training.data.cutoff``); the version trains on a minute less of the log.
COMMIT_MARGIN = timedelta(seconds=60)
#: Event types and their training weights when the caller passes none (the service's
#: default ``GENREC_EVENT_TYPES``); negative = negative feedback.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 0.25,
    "click": 1.0,
    "like": 2.0,
    "purchase": 3.0,
    "dislike": -1.0,
}


def read_interaction_log(
    database_url: str,
    *,
    until: datetime | None = None,
    event_weights: Mapping[str, float] | None = None,
    ratings_only: bool = False,
) -> Interactions:
    """All logged interactions (with ``until``: those at or before it), oldest id first.

    ``event_weights`` (default ``DEFAULT_EVENT_WEIGHTS``) decide how typed events
    are read; ``ratings_only`` leaves out the unrated rows of a log that holds ratings
    (both: module docstring).
    """
    weights = DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights
    with _connected(database_url) as engine:
        return _read(engine, until, weights, ratings_only)


def log_cutoff(database_url: str) -> datetime:
    """The ``until`` of a log read about to start: the database's clock less ``COMMIT_MARGIN``,
    truncated to the millisecond a manifest keeps.

    Every cutoff (retrain and tune jobs, ``genrec train|tune --data db``) comes from
    here. The version records it (``training.pipeline.save_trained``'s ``log_read_at``),
    so the log reader and serving's fold-in compare the very instant the manifest holds.
    The database's clock because it is the one ``created_at`` is stamped with
    (``app.repository.add_interactions``): a worker's clock ahead of it would put rows
    written after the read before the cutoff. The margin because a row is stamped when
    its write starts and seen when it commits (``COMMIT_MARGIN``). Truncating moves the
    cutoff earlier, the safe way for the same reason.
    """
    with _connected(database_url) as engine, engine.connect() as conn:
        now = conn.execute(select(database_now(-COMMIT_MARGIN.total_seconds()))).scalar_one()
    cutoff = _as_utc(now)
    return cutoff.replace(microsecond=cutoff.microsecond // 1000 * 1000)


def check_interaction_log(database_url: str) -> None:
    """Refuse a log ``read_interaction_log`` cannot read, reading no rows: a database it
    cannot reach, no ``interactions`` table or one without the columns it reads. For a
    check before work that is dear to start (``train --nproc``)."""
    with _connected(database_url) as engine:
        _reflect(engine)


@contextmanager
def _connected(database_url: str) -> Iterator[Engine]:
    """An engine for the log, disposed after; a database error is one ``DataError`` line
    (SQLAlchemy's own message adds the driver's hint and a link on lines of their own)."""
    engine = create_engine(_driver_url(database_url))
    try:
        yield engine
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise DataError(
            without_password(
                f"cannot read the interaction log at {masked_url(database_url)}: {reason}",
                database_url,
            )
        ) from exc
    finally:
        engine.dispose()


def _read(
    engine: Engine, until: datetime | None, weights: Mapping[str, float], ratings_only: bool
) -> Interactions:
    table = _reflect(engine)
    typed = "type" in table.c  # a log from before migration 0004 has no types
    columns = [table.c.user_id, table.c.item_id, table.c.rating, table.c.ts]
    query = select(*columns, table.c.type) if typed else select(*columns)
    if until is not None:
        cutoff = _as_utc(until)
        if "created_at" in table.c:
            query = query.where(in_training(table.c.ts, table.c.created_at, cutoff))
        else:  # a log from before arrival times were kept: event time alone
            query = query.where(table.c.ts <= cutoff)
    if "id" in table.c:
        query = query.order_by(table.c.id)
    users: list[str] = []
    items: list[str] = []
    ratings: list[float | None] = []
    times: list[datetime] = []
    rated: list[bool] = []  # the row carries a rating of its own, not a weight or 1.0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(query)
        for batch in result.partitions():
            for row in batch:
                user_id, item_id, rating, ts = row[:4]
                has_rating = rating is not None
                if typed and row[4] is not None:
                    weight = weights.get(row[4], 0.0)
                    if weight <= 0:
                        continue  # negative or untrained feedback is never a positive
                    if rating is None:
                        rating = weight
                rated.append(has_rating)
                users.append(user_id)
                items.append(item_id)
                ratings.append(rating)
                times.append(ts)
    if not users:
        window = f" at or before {until.isoformat()}" if until is not None else ""
        raise DataError(
            f"the interaction log at {masked_url(str(engine.url))} has no interactions{window}"
            + ("" if until is None else _newer_note(engine, table, _as_utc(until)))
        )
    if ratings_only and any(rated):
        keep = [i for i, is_rated in enumerate(rated) if is_rated]
        users = [users[i] for i in keep]
        items = [items[i] for i in keep]
        ratings = [ratings[i] for i in keep]
        times = [times[i] for i in keep]
        rated = [True] * len(keep)
    data = _to_interactions(users, items, ratings, times)
    if any(rated) and not all(rated):
        # Ratings and unrated events together: which is which goes with the records, so a
        # read for a top-k search can still give its rating models the ratings alone.
        data = dataclasses.replace(data, rated=np.asarray(rated, dtype=bool))
    return data


def _newer_note(engine: Engine, table: Table, cutoff: datetime) -> str:
    """Why a read up to ``cutoff`` found nothing when the log has newer rows: a read
    leaves the last ``COMMIT_MARGIN`` to serving, so a job started right after the first
    interactions were logged found none, and "has no interactions" alone read as a log
    that lost them."""
    if "created_at" in table.c:
        newer = ~in_training(table.c.ts, table.c.created_at, cutoff)
    else:
        newer = table.c.ts > cutoff
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(table).where(newer)).scalar_one()
    if not count:
        return ""
    return (
        f"; {count:,} row(s) logged after it are not read yet (a read takes the rows logged at "
        f"least {COMMIT_MARGIN.total_seconds():g} s before it; serving folds in the newer "
        "ones): try again later"
    )


def _reflect(engine: Engine) -> Table:
    """The ``interactions`` table as the database has it; DataError if absent or too old."""
    try:
        table = Table(TABLE, MetaData(), autoload_with=engine)
    except NoSuchTableError:
        raise DataError(
            f"no table '{TABLE}' in {masked_url(str(engine.url))}: run `genrec migrate` (the "
            "service runs it on start unless GENREC_AUTO_MIGRATE=false, as under compose), or "
            "point the database URL at the service's database"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.c]
    if missing:
        raise DataError(
            f"table '{TABLE}' in {masked_url(str(engine.url))} lacks column(s) {', '.join(missing)}"
        )
    return table


def _to_interactions(
    users: list[str], items: list[str], ratings: list[float | None], times: list[datetime]
) -> Interactions:
    rating_arr = np.array([np.nan if r is None else r for r in ratings], dtype=np.float64)
    observed = ~np.isnan(rating_arr)
    explicit = bool(observed.any())
    rating_arr[~observed] = 1.0  # an implicit event counts as one interaction
    # SQLite returns naive datetimes (stored in UTC by the service); utc=True localises them.
    seconds = datetimes_to_seconds(pd.Series(pd.to_datetime(times, utc=True)))
    return build_interactions(
        np.asarray(users, dtype=object),
        np.asarray(items, dtype=object),
        rating_arr.astype(np.float32),
        seconds,
        explicit=explicit,
    )


def _as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive ``until`` is taken as UTC, as the service writes every time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _driver_url(url: str) -> str:
    """Plain ``postgresql://`` means psycopg2 to SQLAlchemy; the project ships psycopg 3."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DataError(f"database URL {masked_url(url)!r} is not a valid SQLAlchemy URL") from exc
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)
