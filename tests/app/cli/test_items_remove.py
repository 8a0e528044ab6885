"""``genrec items remove ID...``: removes catalog items as DELETE /v1/items/{id} does,
all or nothing, with a clear line and exit code 2 for what it refuses."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from app.cli import app
from app.core.db import make_engine, make_sessionmaker
from app.repository import get_item


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["items", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _removed(folder: Path) -> dict[str, bool]:
    engine = make_engine(f"sqlite:///{folder}/log.db")
    with make_sessionmaker(engine)() as session:
        rows = {i: get_item(session, i) for i in ("a", "b", "c")}
    engine.dispose()
    return {i: row is not None and row.removed_at is not None for i, row in rows.items()}


def test_remove_then_again_then_restore_by_import(cli_settings: Path) -> None:
    catalog = cli_settings / "items.csv"
    catalog.write_text("item_id,title\na,A\nb,B\nc,C\n")
    assert _run("import", str(catalog))[0] == 0
    code, output = _run("remove", "a", "b", "a")
    assert (code, output.strip()) == (0, "removed 2 item(s)"), output
    assert _removed(cli_settings) == {"a": True, "b": True, "c": False}
    code, output = _run("remove", "b", "c")
    assert (code, output.strip()) == (0, "removed 1 item(s); 1 already removed"), output
    code, output = _run("import", str(catalog))
    assert code == 0 and "0 updated, 3 restored, 0 unchanged" in output, output
    assert _removed(cli_settings) == {"a": False, "b": False, "c": False}


def test_an_unknown_id_removes_nothing(cli_settings: Path) -> None:
    catalog = cli_settings / "items.csv"
    catalog.write_text("item_id\na\nb\n")
    assert _run("import", str(catalog))[0] == 0
    code, output = _run("remove", "a", "nope")
    assert code == 2, output
    assert "error: not in the catalog: 'nope'; nothing was removed" in output
    assert _removed(cli_settings) == {"a": False, "b": False, "c": False}


def test_bad_ids_and_no_ids_are_refused(cli_settings: Path) -> None:
    code, output = _run("remove", " ")
    assert code == 2 and "error: item_id is only white space (1 character)" in output, output
    code, output = _run("remove", "")
    assert code == 2 and "error: item_id must be a non-empty string" in output, output
    code, output = _run("remove", "x" * 300)
    assert code == 2 and "is 300 characters long; the limit is 256" in output, output
    code, output = _run("remove")
    assert code == 2 and "Missing argument 'ITEM_ID...'" in output, output
