"""``genrec migrate`` and the start-up migration on a database a later release migrated.

A rolling upgrade runs the previous release's replicas on the new schema, and going
back is redeploying the previous image: in both, this release meets a database whose
revision it does not ship. Migrations only add, so it runs on that schema (``/readyz``
says so, ``app.core.db.schema_problem``), but ``genrec migrate`` answered Alembic's
``Can't locate revision`` with a traceback and exit 1, so compose's one-shot
``migrate`` service failed and no api container of the previous image started; a
server with ``GENREC_AUTO_MIGRATE`` on logged "migration at startup failed" as an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from app.cli import app
from app.core.db import make_engine, upgrade_database
from tests.conftest import POSTGRES_ADMIN_URL, scratch_database

#: A revision no release of this package ships: a later release's migration.
LATER = "9999_later_release"


@pytest.fixture(params=["sqlite", "postgres"])
def later_database(
    request: pytest.FixtureRequest, cli_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A database at this release's head whose ``alembic_version`` names a later revision."""
    from app.core.config import get_settings

    with (
        scratch_database(POSTGRES_ADMIN_URL, "genrec_later")
        if request.param == "postgres"
        else nullcontext(f"sqlite:///{cli_settings}/later.db")
    ) as url:
        upgrade_database(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": LATER})
        engine.dispose()
        monkeypatch.setenv("GENREC_DATABASE_URL", url)
        get_settings.cache_clear()
        yield url
        get_settings.cache_clear()


def _revision(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())
    finally:
        engine.dispose()


def test_migrate_leaves_a_later_schema_alone_and_says_why(later_database: str) -> None:
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert LATER in result.output, result.output
    assert "later release" in result.output, result.output
    assert _revision(later_database) == LATER


def test_the_startup_migration_on_a_later_schema_is_no_error(
    later_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    from app.main import migrate_at_startup

    caplog.set_level(logging.INFO)
    migrate_at_startup(later_database)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert LATER in caplog.text
    assert _revision(later_database) == LATER
