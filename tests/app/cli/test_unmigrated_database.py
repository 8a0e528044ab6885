"""A command on a database that was never migrated says to run ``genrec migrate``.

Under docker compose (and natively with ``GENREC_AUTO_MIGRATE=false``) only
``genrec migrate`` creates the schema. A command pointed at a database it has not
run on answered with the driver's ``relation "items" does not exist``, and the
worker with "cannot reach the database" (it had reached it), neither saying what
mends it; ``/readyz`` already says "run `genrec migrate`" for the same state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.conftest import POSTGRES_ADMIN_URL, scratch_database


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(
    request: pytest.FixtureRequest, cli_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An existing database without genrec's tables, and commands that do not migrate."""
    from app.core.config import get_settings

    database = (
        scratch_database(POSTGRES_ADMIN_URL, "genrec_unmigrated")
        if request.param == "postgres"
        else _empty_sqlite(cli_settings)
    )
    with database as url:
        monkeypatch.setenv("GENREC_DATABASE_URL", url)
        monkeypatch.setenv("GENREC_AUTO_MIGRATE", "false")
        get_settings.cache_clear()
        yield url
        get_settings.cache_clear()


@contextmanager
def _empty_sqlite(folder: Path) -> Iterator[str]:
    """A SQLite file that exists and holds no table (as ``createdb`` leaves Postgres)."""
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{folder}/empty.db"
    engine = create_engine(url)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    yield url


@pytest.mark.parametrize(
    "args",
    [
        ["users", "erase", "42"],
        ["items", "remove", "50"],
        ["items", "import", "CATALOG"],
        ["worker", "--once"],
        ["train", "--model", "popularity", "--data", "db"],
    ],
)
def test_a_command_on_an_unmigrated_database_says_to_migrate(
    empty_database: str, cli_settings: Path, args: list[str]
) -> None:
    catalog = cli_settings / "items.csv"
    catalog.write_text("item_id,title\n50,Star Wars\n")
    args = [str(catalog) if a == "CATALOG" else a for a in args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "run `genrec migrate`" in result.output, result.output
    assert "cannot reach" not in result.output, result.output
    assert "Traceback" not in result.output
