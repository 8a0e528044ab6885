"""``database_now(seconds)``: the database's clock (plus ``seconds``) inside a statement.

Why: job leases are compared across machines. A lease written from one worker's clock
and checked against another's is only as good as the two clocks agree, so a worker
minutes off took over live jobs (ahead) or wrote leases already expired (behind). The
database is the one clock every worker shares; leases are computed and compared in
SQL against it (``app.repository``, the retrain-job statements).

Postgres: ``now()`` (the transaction's start: the claim's SELECT and UPDATE see one
instant). SQLite: ``strftime(..., 'now')``, written in the text format SQLAlchemy
stores its own datetimes in (UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``), so rows written
either way compare as text and read back alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class DatabaseNow(FunctionElement[datetime]):
    """The database's current UTC time plus the seconds of its one argument."""

    type = DateTime(timezone=True)
    name = "database_now"
    inherit_cache = True


def database_now(seconds: float = 0.0) -> DatabaseNow:
    """The database's now, ``seconds`` later (a lease's end); a bound value, one statement."""
    return DatabaseNow(literal(float(seconds), Float()))


@compiles(DatabaseNow)
def _postgresql(element: DatabaseNow, compiler: SQLCompiler, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"(now() + make_interval(secs => CAST({seconds} AS double precision)))"


@compiles(DatabaseNow, "sqlite")
def _sqlite(element: DatabaseNow, compiler: SQLCompiler, **kw: Any) -> str:
    # %f is seconds with milliseconds ("SS.SSS"): three zeros make SQLAlchemy's six digits.
    seconds = compiler.process(element.clauses, **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', {seconds})) || '000')"
