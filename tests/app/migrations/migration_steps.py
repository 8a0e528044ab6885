"""The steps every migration test takes after its ``previous_code`` fixture (the database
at the revision before, holding rows that revision's code wrote): look at tables,
columns and indexes, downgrade. Written once here so a test reads as what its migration
must keep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from alembic import command
from sqlalchemy import Engine, Executable, inspect

from app.core.db import alembic_config


class PreviousCode(Protocol):
    """The ``previous_code`` fixture (``conftest.py``): ``url`` at ``revision`` holding
    what ``insert`` writes with ``rows``; the engine on it."""

    def __call__(
        self,
        url: str,
        revision: str,
        insert: str | Executable | None = None,
        rows: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    ) -> Engine: ...


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)  # type: ignore[arg-type]


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def columns(engine: Engine, table: str) -> dict[str, Any]:
    """``table``'s columns by name, each as SQLAlchemy reflects it (``nullable``, ...)."""
    return {str(c["name"]): c for c in inspect(engine).get_columns(table)}


def indexes(engine: Engine, table: str) -> dict[str, list[str | None]]:
    """``table``'s indexes by name, each with its column names in order."""
    return {str(i["name"]): list(i["column_names"]) for i in inspect(engine).get_indexes(table)}
