"""A migrated database of the test's own on each backend, for the job-queue tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import make_engine, make_sessionmaker, upgrade_database


@pytest.fixture
def job_sessions(blank_database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated SQLite file, then on a scratch Postgres database of this
    test's own: no job another test queued (on the session's shared database) can be
    taken for a twin or counted."""
    upgrade_database(blank_database_url)
    engine = make_engine(blank_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()
