"""``genrec users erase ID...``: erases users as DELETE /v1/users/{id} does, every id
checked first, with a clear line and exit code 2 for what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.core.db import make_engine, make_sessionmaker, upgrade_database
from app.repository import NewInteraction, add_interactions, count_interactions, erasures_since


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["users", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _log(folder: Path, *rows: tuple[str, str]) -> None:
    url = f"sqlite:///{folder}/log.db"
    upgrade_database(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        add_interactions(session, [NewInteraction(user, item, 4.0) for user, item in rows])
        session.commit()
    engine.dispose()


def _state(folder: Path) -> tuple[dict[str, int], list[str]]:
    engine = make_engine(f"sqlite:///{folder}/log.db")
    with make_sessionmaker(engine)() as session:
        counts = {u: count_interactions(session, u) for u in ("a", "b", "c")}
        erased = sorted(row.user_id for row in erasures_since(session, -1))
    engine.dispose()
    return counts, erased


def test_erase_users_then_again(cli_settings: Path) -> None:
    _log(cli_settings, ("a", "1"), ("a", "2"), ("b", "1"), ("c", "3"))
    code, output = _run("erase", "a", "b", "a")
    assert (code, output.strip()) == (
        0,
        "erased 2 user(s): deleted 3 interaction(s) and 0 impression(s)",
    ), output
    assert _state(cli_settings) == ({"a": 0, "b": 0, "c": 1}, ["a", "b"])
    code, output = _run("erase", "a", "nobody")  # nothing left to delete: still erased
    assert (code, output.strip()) == (
        0,
        "erased 2 user(s): deleted 0 interaction(s) and 0 impression(s)",
    ), output
    assert _state(cli_settings) == ({"a": 0, "b": 0, "c": 1}, ["a", "b", "nobody"])


def test_bad_ids_and_no_ids_are_refused_before_anything_is_erased(cli_settings: Path) -> None:
    _log(cli_settings, ("a", "1"))
    code, output = _run("erase", "a", " ")
    assert code == 2 and "error: user_id is only white space (1 character)" in output, output
    code, output = _run("erase", "a", "x" * 300)
    assert code == 2 and "is 300 characters long; the limit is 256" in output, output
    code, output = _run("erase", "a", "b\x00c")
    assert code == 2 and "user_id must not contain the NUL character" in output, output
    assert _state(cli_settings) == ({"a": 1, "b": 0, "c": 0}, [])
    code, output = _run("erase")
    assert code == 2 and "Missing argument 'USER_ID...'" in output, output


def test_an_unreachable_database_is_one_error_line(
    cli_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core.config import get_settings

    monkeypatch.setenv("GENREC_DATABASE_URL", "postgresql://postgres:secret@127.0.0.1:1/genrec")
    get_settings.cache_clear()
    code, output = _run("erase", "a")
    assert code == 2 and "error: cannot erase users in the database at" in output, output
    assert "secret" not in output and "127.0.0.1:1/genrec: " in output
    assert len(output.strip().splitlines()) == 1, output  # not SQLAlchemy's hint and link
