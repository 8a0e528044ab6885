"""Job rows for the Jobs page's tests, written straight to the database.

The page renders whatever the table holds, so its tests write the rows they need
rather than run workers; the fields every such row must have are set here once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.db_models import RetrainJob


def job_row(**fields: Any) -> RetrainJob:
    """An ease retrain on the log, queued by the API now, with ``fields`` changed."""
    now = datetime.now(UTC)
    defaults: dict[str, Any] = {
        "kind": "retrain",
        "model": "ease",
        "params": {},
        "data": "log",
        "promote": "auto",
        "trigger": "api",
        "status": "queued",
        "attempts": 0,
        "max_attempts": 3,
        "created_at": now,
        "updated_at": now,
    }
    return RetrainJob(**{**defaults, **fields})
