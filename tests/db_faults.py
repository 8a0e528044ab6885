"""Database errors as a worker meets them when Postgres is away: multi-line, as SQLAlchemy
words them (driver message, SQL, background link), for tests of what gets logged."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

#: The driver's first line, which is all a log line should show of the error.
REFUSED = 'connection to server at "127.0.0.1", port 5999 failed: Connection refused'


def unreachable(statement: str = "UPDATE retrain_jobs SET ...") -> OperationalError:
    """The error psycopg raises through SQLAlchemy when the server refuses connections."""
    orig = Exception(f"{REFUSED}\n\tIs the server running on that host and accepting TCP/IP?")
    return OperationalError(statement, {}, orig)


def multi_line_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Captured log messages that span lines or carry SQLAlchemy's SQL or link: none
    should (a database error is logged in one line)."""
    return [
        r.getMessage()
        for r in caplog.records
        if "\n" in r.getMessage() or "sqlalche.me" in r.getMessage() or "[SQL:" in r.getMessage()
    ]


def warnings_with(
    caplog: pytest.LogCaptureFixture, needle: str, level: int = logging.WARNING
) -> list[str]:
    """Captured messages at ``level`` or above that contain ``needle``."""
    return [
        r.getMessage() for r in caplog.records if r.levelno >= level and needle in r.getMessage()
    ]
