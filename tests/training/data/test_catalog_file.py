"""Catalog files (CSV / JSONL): what is read, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data.catalog_file import CatalogRecord, read_catalog_file
from training.data.errors import DataError


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refusal(tmp_path: Path, name: str, content: str) -> tuple[Path, str]:
    """The file written as ``name`` with ``content``, and the ``DataError`` reading it gives."""
    path = _write(tmp_path, name, content)
    with pytest.raises(DataError) as err:
        read_catalog_file(path)
    return path, str(err.value)


def _assert_refused(tmp_path: Path, name: str, content: str, message: str) -> None:
    """Reading the file is refused with ``message``, naming the file."""
    path, error = _refusal(tmp_path, name, content)
    assert message in error
    assert str(path) in error


def test_csv_reads_columns_json_attributes_and_extra_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "items.csv",
        "item_id,title,text,attributes,year\n"
        '007,Moonraker,"A spy, in space.\nSecond line.","{""genres"": [""Action""]}",1979\n'
        "\n"
        "8,,,,\n",
    )
    first, second = read_catalog_file(path)
    assert first == CatalogRecord(
        item_id="007",  # ids stay strings: leading zeros kept
        title="Moonraker",
        text="A spy, in space.\nSecond line.",
        attributes={"genres": ["Action"], "year": "1979"},
        line=2,
    )
    # The quoted text spans two lines, the blank line is skipped: item 8 starts on line 5.
    assert second == CatalogRecord(item_id="8", title=None, text=None, attributes={}, line=5)


def test_csv_with_only_item_id_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_bytes("\ufeffitem_id\n1\n2\n".encode())
    assert [r.item_id for r in read_catalog_file(path)] == ["1", "2"]


def test_jsonl_records(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "items.jsonl",
        '{"item_id": "a", "title": "A", "text": "space rocket", "attributes": {"k": 1}}\n'
        "\n"
        '{"item_id": 42, "text": null}\n',
    )
    a, b = read_catalog_file(path)
    assert a == CatalogRecord("a", "A", "space rocket", {"k": 1}, line=1)
    assert b == CatalogRecord("42", None, None, {}, line=3)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.csv", "title,text\nA,b\n", "line 1: the header has no item_id column"),
        ("x.csv", "item_id,title,title\n1,a,b\n", "column 'title' appears twice"),
        ("x.csv", "item_id,title\n1,a,extra\n", "line 2: 3 fields, the header has 2 columns"),
        ("x.csv", "item_id,title\n ,a\n", "line 2: item_id is empty"),
        ("x.csv", "item_id,attributes\n1,{bad\n", "line 2: attributes: not valid JSON"),
        ("x.csv", 'item_id,attributes\n1,"[1, 2]"\n', "attributes must be a JSON object"),
        ("x.csv", "item_id\n1\n2\n1\n", "line 4: item_id '1' already appears on line 2"),
        ("x.csv", "", "empty file"),
        ("x.csv", "item_id,title\n\n", "no items in the file; nothing to import"),
        ("x.jsonl", "", "no items in the file; nothing to import"),
        ("x.jsonl", "\n \n", "no items in the file; nothing to import"),
        ("x.jsonl", '{"item_id": "1"}\n{"item_id": "2",\n', "line 2: not valid JSON"),
        ("x.jsonl", "[1]\n", "line 1: expected a JSON object"),
        ("x.jsonl", '{"item_id": "1", "txt": "a"}\n', "line 1: unknown key(s) txt"),
        ("x.jsonl", '{"title": "a"}\n', "line 1: item_id is missing"),
        ("x.jsonl", '{"item_id": true}\n', "item_id must be a string, got bool"),
        ("x.jsonl", '{"item_id": "1", "text": 5}\n', "text must be a string or null, got int"),
        ("x.jsonl", '{"item_id": "1", "attributes": []}\n', "attributes must be a JSON object"),
        ("x.txt", "item_id\n1\n", "unknown catalog file type '.txt'"),
    ],
)
def test_bad_files_name_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    _assert_refused(tmp_path, name, content, message)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "x.jsonl",
            '{"item_id": "3", "title": "T3"\n',
            "line 1: not valid JSON at character 31: Expecting ',' delimiter",
        ),
        (
            "x.csv",
            "item_id,attributes\n1,{bad\n",
            "line 2: attributes: not valid JSON at character 1: "
            "Expecting property name enclosed in double quotes",
        ),
    ],
)
def test_a_json_error_names_the_file_line_only(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    """json's own message adds a line and column of its own ("line 2 column 1" for a
    record cut short on line 1, counting the newline): two line numbers that disagree."""
    path, error = _refusal(tmp_path, name, content)
    assert error == f"{path}, {message}"


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="catalog file not found"):
        read_catalog_file(tmp_path / "nope.csv")
    folder = tmp_path / "items.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=r"items\.csv: is a directory, not a catalog file"):
        read_catalog_file(folder)
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"item_id": "caf\xe9"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        read_catalog_file(path)


def test_ml100k_u_item_gives_titles_genre_lists_and_numeric_years(data_dir: Path) -> None:
    records = read_catalog_file(data_dir / "ml-100k" / "u.item")
    assert len(records) == 1682
    toy_story = records[0]
    assert (toy_story.item_id, toy_story.title) == ("1", "Toy Story")
    assert toy_story.attributes == {"genres": ["Animation", "Children's", "Comedy"], "year": 1995}
    assert all(isinstance(r.attributes.get("year", 0), int) for r in records)
    unknown = next(r for r in records if r.item_id == "267")
    assert unknown.attributes == {"genres": ["unknown"]}  # no year anywhere: left out


@pytest.mark.parametrize("name", ["items.csv", "items.jsonl"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_byte_that_is_not_utf8_is_named_by_its_line_and_column(
    tmp_path: Path, name: str, bom: bytes
) -> None:
    """The text stream decoded in 8 KB chunks: a bad byte on line 702 was reported on line
    561 (the header, in a small CSV) at a position within the chunk; JSONL named no line."""
    if name.endswith(".csv"):
        lines = [b"item_id,title"] + [b"i%d,title %d" % (n, n) for n in range(1, 1000)]
    else:
        lines = [b'{"item_id": "i%d", "title": "title %d"}' % (n, n) for n in range(1000)]
    lines[701] = lines[701].replace(b"title 701", b"caf\xe9 701")
    path = tmp_path / name
    path.write_bytes(bom + b"\r\n".join(lines) + b"\r\n")
    with pytest.raises(DataError) as err:
        read_catalog_file(path)
    column = lines[701].index(b"\xe9") + 1
    assert f"{path}, line 702, column {column}: byte 0xe9 is not UTF-8" in str(err.value)
    path.write_bytes(bom + b"\r\n".join(lines).replace(b"\xe9", b"e") + b"\r\n")
    records = read_catalog_file(path)
    assert len(records) == (999 if name.endswith(".csv") else 1000)
    assert records[-1].title == "title 999" and "cafe 701" in {r.title for r in records}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "x.jsonl",
            '{"item_id": "1", "attributes": {"a": ' + "[" * 5000 + "]" * 5000 + "}}\n",
            "line 1: not valid JSON: JSON nested too deeply",
        ),
        (
            "x.jsonl",
            '{"item_id": "1", "attributes": {"a": ' + "9" * 5000 + "}}\n",
            "line 1: not valid JSON: a number of more than",
        ),
        (
            "x.csv",
            'item_id,attributes\n1,"{""a"": ' + "[" * 5000 + "]" * 5000 + '}"\n',
            "line 2: attributes: not valid JSON: JSON nested too deeply",
        ),
        (
            "x.csv",
            'item_id,attributes\n1,"{""a"": ' + "9" * 5000 + '}"\n',
            "line 2: attributes: not valid JSON: a number of more than",
        ),
    ],
)
def test_json_too_deep_or_a_number_too_long_is_a_data_error(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    """``json.loads`` raises ``RecursionError`` for deep nesting and ``ValueError`` for an
    integer of more than 4,300 digits, neither a ``JSONDecodeError``: they reached
    ``genrec items import`` as a traceback instead of an error line naming the line."""
    _assert_refused(tmp_path, name, content, message)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "x.jsonl",
            '{"item_id": "1", "title": "A", "item_id": "2"}\n',
            "line 1: key 'item_id' appears more than once in one JSON object",
        ),
        (
            "x.jsonl",
            '{"item_id": "1", "attributes": {"year": 1990, "year": 1991}}\n',
            "line 1: key 'year' appears more than once in one JSON object",
        ),
        (
            "x.csv",
            'item_id,attributes\n1,"{""year"": 1990, ""year"": 1991}"\n',
            "line 2: attributes: key 'year' appears more than once in one JSON object",
        ),
    ],
)
def test_a_key_given_twice_in_a_record_is_a_data_error(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    """``json.loads`` keeps the last value: a line naming item_id twice imported only the
    second item, the first's title under the other id, and no word of it. The HTTP API
    refuses such a body (``app.api.body``); the import refuses the record alike."""
    _assert_refused(tmp_path, name, content, message)
