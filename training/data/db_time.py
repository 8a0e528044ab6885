"""``database_now(seconds)``: the database's clock (plus ``seconds``) inside a statement.

Why: times that are compared across machines are only as good as the machines'
clocks agree. Job leases written from one worker's clock and checked against
another's let a worker minutes off take over live jobs (ahead) or write leases
already expired (behind); an interaction's arrival time stamped on an app
server's clock and a log read's cutoff taken on a worker's lost the rows of a
lagging server to both the version and serving's fold-in (``training.data.cutoff``).
The database is the one clock every process shares, so such times are computed in
SQL against it: leases (``app.repository``, the retrain-job statements),
``interactions.created_at`` (``app.repository.add_interactions``) and a log read's
cutoff (``training.data.log_reader.log_cutoff``).

It lives in ``training`` because the log reader, the lower layer, needs it and
must not import ``app``; ``app.core.db_time`` re-exports it.

Postgres: ``now()`` (the transaction's start: the claim's SELECT and UPDATE see one
instant). SQLite: ``strftime(..., 'now')``, written in the text format SQLAlchemy
stores its own datetimes in (UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``), so rows written
either way compare as text and read back alike. ``database_now()`` with no offset is
the bare function (``now()``): no interval arithmetic on the interaction write path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

#: ``database_now()`` as Postgres writes it, for a prebuilt text statement
#: (``app.repository``'s interaction insert): one stable value per transaction.
POSTGRES_NOW = "now()"
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now'"


class DatabaseNow(FunctionElement[datetime]):
    """The database's current UTC time, plus the seconds of its one argument if it has one."""

    type = DateTime(timezone=True)
    name = "database_now"
    inherit_cache = True


def database_now(seconds: float = 0.0) -> DatabaseNow:
    """The database's now, ``seconds`` later (a lease's end) or earlier (a read's cutoff);
    an offset is a bound value, none is the bare function, one statement either way."""
    if seconds == 0:
        return DatabaseNow()
    return DatabaseNow(literal(float(seconds), Float()))


@compiles(DatabaseNow)
def _postgresql(element: DatabaseNow, compiler: SQLCompiler, **kw: Any) -> str:
    if not element.clauses.clauses:
        return POSTGRES_NOW
    seconds = compiler.process(element.clauses, **kw)
    return f"({POSTGRES_NOW} + make_interval(secs => CAST({seconds} AS double precision)))"


@compiles(DatabaseNow, "sqlite")
def _sqlite(element: DatabaseNow, compiler: SQLCompiler, **kw: Any) -> str:
    # %f is seconds with milliseconds ("SS.SSS"): three zeros make SQLAlchemy's six digits.
    if not element.clauses.clauses:
        return f"({_SQLITE_NOW}) || '000')"
    seconds = compiler.process(element.clauses, **kw)
    return f"({_SQLITE_NOW}, printf('%+.3f seconds', {seconds})) || '000')"
