"""``genrec items import ml-100k``: the demo catalog by name, found as ``--data ml-100k``
finds the set (README's quickstart; a path beside the checkout existed only in one layout).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app


def _import(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["items", "import", *args])
    return result.exit_code, result.output


def test_ml_100k_by_name_from_the_data_directory(
    cli_settings: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENREC_DATA_DIR", str(data_dir))
    code, output = _import("ml-100k")
    assert code == 0, output
    assert f"imported 1682 item(s) from {data_dir / 'ml-100k' / 'u.item'}" in output


def test_ml_100k_by_name_from_the_download_cache(
    cli_settings: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where ``make run`` left it on a machine without GENREC_DATA_DIR (downloaded)."""
    cached = cli_settings / "cache" / "ml-100k"
    cached.mkdir(parents=True)
    for name in ("u.data", "u.item", "u.genre"):
        shutil.copy(data_dir / "ml-100k" / name, cached / name)
    monkeypatch.delenv("GENREC_DATA_DIR", raising=False)
    monkeypatch.setenv("GENREC_CACHE_DIR", str(cli_settings / "cache"))
    monkeypatch.chdir(cli_settings)  # no folder named ml-100k here
    code, output = _import("ml-100k")
    assert code == 0, output
    assert f"imported 1682 item(s) from {cached / 'u.item'}" in output


def test_a_file_named_like_a_set_is_still_a_file(
    cli_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(cli_settings)
    Path("ml-100k").mkdir()
    code, output = _import("ml-100k")
    assert code == 2 and "ml-100k: is a directory, not a catalog file" in output, output


@pytest.mark.parametrize(
    ("name", "content"),
    [("items.jsonl", ""), ("items.jsonl", "\n  \n"), ("items.csv", "item_id,title\n")],
)
def test_a_file_without_items_is_refused_as_a_0_byte_csv_is(
    cli_settings: Path, name: str, content: str
) -> None:
    """An empty ``.jsonl`` (or a CSV with only its header) "imported 0 item(s)" with exit
    0, while a 0-byte CSV was refused: a truncated export looked like a successful one."""
    path = cli_settings / name
    path.write_text(content)
    code, output = _import(str(path))
    assert code == 2, output
    assert output.strip() == f"error: {path}: no items in the file; nothing to import", output


def test_an_item_with_too_many_attributes_is_refused_naming_its_line(cli_settings: Path) -> None:
    """The limit of ``PUT /v1/items/{id}`` (``app.catalog.validate_item``), nothing imported."""
    path = cli_settings / "items.jsonl"
    attributes = ", ".join(f'"a{n}": {n}' for n in range(300))
    path.write_text(f'{{"item_id": "ok"}}\n{{"item_id": "wide", "attributes": {{{attributes}}}}}\n')
    code, output = _import(str(path))
    assert code == 2, output
    assert "line 2" in output and "the item has 300 attributes; the limit is 256" in output, output
    assert "imported" not in output, output
