"""The migration tests' start: a database at the revision before the one under test."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, Executable, text

from app.core.db import make_engine, upgrade_database
from tests.app.migrations.migration_steps import PreviousCode


@pytest.fixture
def previous_code() -> Iterator[PreviousCode]:
    """``previous_code(url, revision, insert, rows)``: ``url`` migrated to ``revision``,
    holding what ``insert`` (SQL text or a statement) writes with ``rows`` as that
    revision's code would; its engine, disposed after the test, also when it fails."""
    engines: list[Engine] = []

    def at(
        url: str,
        revision: str,
        insert: str | Executable | None = None,
        rows: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    ) -> Engine:
        upgrade_database(url, revision)
        engine = make_engine(url)
        engines.append(engine)
        if insert is not None:
            with engine.begin() as conn:
                conn.execute(text(insert) if isinstance(insert, str) else insert, rows)
        return engine

    yield at
    for engine in engines:
        engine.dispose()
