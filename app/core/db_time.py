"""The database's clock in a statement: ``training.data.db_time``, re-exported.

It lives in ``training`` (the lower layer: the log reader takes its cutoff from it and
must not import ``app``); the service's lease and interaction statements import it
from here.
"""

from __future__ import annotations

from training.data.db_time import POSTGRES_NOW, DatabaseNow, database_now

__all__ = ["POSTGRES_NOW", "DatabaseNow", "database_now"]
