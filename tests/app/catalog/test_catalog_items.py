"""Catalog items (``app.catalog.items``): validation, storage on both backends, file import."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app import repository
from app.catalog.items import CatalogError, import_records, read_item, save_items, validate_item
from app.catalog.removal import remove_items
from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.repository import NewItem
from training.data.catalog_file import CatalogRecord, read_catalog_file

# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"item_id": ""}, "item_id must be a non-empty string"),
        ({"item_id": " \t"}, "item_id is only white space .2 characters.: an id needs"),
        ({"item_id": "x" * 300}, "item_id is 300 characters long; the limit is 256"),
        # the API's body validator refused it; validate_item (import) let it through
        ({"item_id": "a\x00b"}, "item_id must not contain the NUL character"),
        ({"title": "t" * 1001}, "title is 1001 characters long; the limit is 1000"),
        ({"text": "w" * 100_001}, "text is 100001 characters long"),
        ({"attributes": {"x": float("nan")}}, "attributes must be plain JSON"),
        ({"attributes": {"x": {1, 2}}}, "attributes must be plain JSON"),
        ({"attributes": {"x": "y" * 70_000}}, "the limit is 65536"),
        ({"text": "a\x00b"}, "text must not contain the NUL character"),
        ({"attributes": {"x": "\x00"}}, "attribute 'x' must not contain the NUL character"),
        ({"title": "bad \ud800 title"}, "title must not contain a lone surrogate"),
        ({"attributes": {"sur": "\ud800"}}, "attribute 'sur' must not contain a lone surrogate"),
        ({"attributes": {"l": ["a", "\udfff"]}}, "attribute 'l' must not contain a lone"),
        ({"attributes": {"\ud800k": "v"}}, "ud800k' must not contain a lone surrogate"),
        ({"attributes": {"k\x00": "v"}}, "x00' must not contain the NUL character"),
        ({"attributes": {"n" * 257: 1}}, "is 257 characters long; the limit is 256"),
        (
            {"attributes": {f"a{n}": n for n in range(257)}},
            "the item has 257 attributes; the limit is 256",
        ),
        ({"attributes": {"": 1}}, "attribute name '' cannot be named by a rule: names match"),
        ({"attributes": {"release year": 1}}, "'release year' cannot be named by a rule"),
        ({"attributes": {"a:b": 1}}, "'a:b' cannot be named"),
        ({"attributes": {"género": "x"}}, r"match \[A-Za-z_\]\[A-Za-z0-9_.-\]\*"),
        ({"attributes": {"x": 2**63}}, "attribute 'x': integer 9223372036854775808 is outside"),
        ({"attributes": {"x": [1, 10**400]}}, "integer 100000000000000000000... (401 digits"),
    ],
)
def test_validation_says_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"item_id": "1", "title": None, "text": None, "attributes": {}}
    with pytest.raises(CatalogError, match=message.replace("(", r"\(")):
        validate_item(**{**args, **kwargs})  # type: ignore[arg-type]


def test_validation_normalises_empty_strings_to_none() -> None:
    assert validate_item("1", "", "", None) == NewItem("1", None, None, {})


# --------------------------------------------------------------------------- import


def test_import_writes_all_records_and_reports_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/import.db"
    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": "a", "title": "A", "text": "space rocket"}\n{"item_id": "b"}\n')
    records = read_catalog_file(path)
    counts = {"created": 0, "updated": 0, "restored": 0, "unchanged": 0}
    assert import_records(url, records, str(path)) == {**counts, "created": 2}
    assert import_records(url, records, str(path)) == {**counts, "unchanged": 2}
    engine = make_engine(url)
    row = read_item(make_sessionmaker(engine), "a")
    assert row is not None and (row.title, row.text) == ("A", "space rocket")
    # A removed item in the file comes back, as a PUT brings it back; counted apart.
    remove_items(make_sessionmaker(engine), ["b"])
    assert import_records(url, records, str(path)) == {**counts, "restored": 1, "unchanged": 1}
    restored = read_item(make_sessionmaker(engine), "b")
    engine.dispose()
    assert restored is not None and restored.removed_at is None


def test_import_is_all_or_nothing_and_names_the_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/import.db"
    path = tmp_path / "items.csv"
    path.write_text("item_id,title\nok,fine\n" + "x" * 300 + ",too long\n")
    with pytest.raises(CatalogError, match=rf"{path}, line 3: item_id is 300 characters"):
        import_records(url, read_catalog_file(path), str(path))
    upgrade_database(url)
    engine = make_engine(url)
    assert read_item(make_sessionmaker(engine), "ok") is None
    engine.dispose()


def test_import_keeps_one_kind_per_attribute(tmp_path: Path) -> None:
    """Against the stored catalog and within the file: a number stays a number."""
    url = f"sqlite:///{tmp_path}/import.db"
    first = tmp_path / "first.jsonl"
    first.write_text('{"item_id": "a", "attributes": {"year": 1995, "genres": ["Drama"]}}\n')
    import_records(url, read_catalog_file(first), str(first))
    later = tmp_path / "later.jsonl"
    later.write_text(
        '{"item_id": "b", "attributes": {"genres": ["Comedy"]}}\n'
        '{"item_id": "c", "attributes": {"year": "1996"}}\n'
    )
    with pytest.raises(CatalogError, match=rf"{later}, line 2: attribute 'year' is a string"):
        import_records(url, read_catalog_file(later), str(later))
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        '{"item_id": "d", "attributes": {"size": 1}}\n{"item_id": "e", "attributes": {"size": "L"}}\n'
    )
    with pytest.raises(CatalogError, match="line 2: attribute 'size' is a string here"):
        import_records(url, read_catalog_file(mixed), str(mixed))


def test_attribute_values_must_be_rule_testable() -> None:
    args: dict[str, object] = {"item_id": "1", "title": None, "text": None}
    for bad in ({"x": {"a": 1}}, {"x": [1, "a"]}, {"x": [[1]]}):
        with pytest.raises(CatalogError, match="flat list of one of those kinds"):
            validate_item(**args, attributes=bad)  # type: ignore[arg-type]
    good = {"n": 1.5, "s": "x", "b": True, "z": None, "l": ["a", "b"], "e": []}
    assert validate_item(**args, attributes=good).attributes == good  # type: ignore[arg-type]


def test_import_into_an_unreachable_database_hides_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://genrec:s3cret@127.0.0.1:1/genrec"
    record = read_catalog_file(_one_item(tmp_path))
    with pytest.raises(CatalogError, match="cannot write the catalog to") as err:
        import_records(url, record, "items.csv", migrate=False)
    assert "s3cret" not in str(err.value)
    # One line (the CLI's error line): SQLAlchemy's message adds the driver's hint and a
    # "Background on this error" link on lines of their own.
    assert "\n" not in str(err.value) and "127.0.0.1:1/genrec: " in str(err.value)


def _one_item(tmp_path: Path) -> Path:
    path = tmp_path / "one.csv"
    path.write_text("item_id,text\n1,space\n")
    return path


# --------------------------------------------------------------------------- both backends


@pytest.fixture(params=["sqlite", "postgres"])
def any_sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = (
        f"sqlite:///{tmp_path}/both.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    upgrade_database(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        session.execute(text("DELETE FROM items"))
        session.execute(text("DELETE FROM attribute_kinds"))
    engine.dispose()


def test_catalog_rows_round_trip_on_both_backends(any_sessions: sessionmaker[Session]) -> None:
    first = save_items(any_sessions, [NewItem("7", "T", "plot", {"genres": ["Drama"]})])
    again = save_items(any_sessions, [NewItem("7", "T", "new plot", {"genres": ["Drama"]})])
    assert (first, again) == ({"7": "created"}, {"7": "updated"})
    row = read_item(any_sessions, "7")
    assert row is not None
    assert (row.text, row.attributes) == ("new plot", {"genres": ["Drama"]})
    assert row.updated_at > row.created_at and row.updated_at.tzinfo is not None


def test_stored_items_are_looked_up_a_chunk_of_ids_at_a_time(
    any_sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Postgres takes at most 65,535 parameters a statement: an import of 70,000 items
    failed before it wrote anything (checked by hand on Postgres with 70,000 items). Here with chunks of 3, each outcome must still be the stored row's."""
    monkeypatch.setattr(repository, "ITEM_LOOKUP_CHUNK", 3)
    first = [NewItem(str(i), None, None, {"n": i}) for i in range(8)]
    assert set(save_items(any_sessions, first).values()) == {"created"}
    again = first[:4] + [NewItem(str(i), "new", None, {"n": i}) for i in range(4, 10)]
    outcome = save_items(any_sessions, again)
    assert outcome == {
        **{str(i): "unchanged" for i in range(4)},
        **{str(i): "updated" for i in range(4, 8)},
        **{str(i): "created" for i in range(8, 10)},
    }


def test_a_kind_is_checked_against_the_database_not_a_replica(
    any_sessions: sessionmaker[Session],
) -> None:
    """Two replicas: the second writer's view of the catalog may lag, the database's does not."""
    save_items(any_sessions, [NewItem("50", None, None, {"grade": 5})])
    with pytest.raises(CatalogError, match="attribute 'grade' is a string here, but the catalog"):
        save_items(any_sessions, [NewItem("172", None, None, {"grade": "red"})])
    assert read_item(any_sessions, "172") is None
    # Null and empty lists hold no kind; another attribute of the same item claims its own.
    assert save_items(any_sessions, [NewItem("9", None, None, {"grade": None, "tags": []})])
    assert save_items(any_sessions, [NewItem("9", None, None, {"grade": [1, 2], "tags": ["a"]})])
    with pytest.raises(CatalogError, match="attribute 'tags' is a number here"):
        save_items(any_sessions, [NewItem("10", None, None, {"tags": [3]})])


def test_concurrent_writers_cannot_give_an_attribute_two_kinds(
    any_sessions: sessionmaker[Session],
) -> None:
    """Writers racing on a new attribute (PUTs and imports): one kind wins, every other kind
    is refused."""
    writers = 8
    start = threading.Barrier(writers)
    outcome: dict[int, str] = {}
    url = str(any_sessions.kw["bind"].url.render_as_string(hide_password=False))

    def write(n: int) -> None:
        value: object = n if n % 2 else f"v{n}"
        item = NewItem(f"race-{n}", None, None, {"size": value})
        start.wait()
        try:
            if n % 4 < 2:  # PUT's path
                save_items(any_sessions, [item])
            else:  # ``genrec items import``
                record = CatalogRecord(item.item_id, None, None, item.attributes, line=1)
                import_records(url, [record], "race.jsonl", migrate=False)
            outcome[n] = "saved"
        except CatalogError:
            outcome[n] = "refused"

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    saved = [n for n, result in outcome.items() if result == "saved"]
    assert len(outcome) == writers and saved
    assert len({n % 2 for n in saved}) == 1  # every saved item holds the same kind
    assert len(saved) == writers // 2  # and every writer of that kind was saved


def test_genrec_items_import_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app.cli import app as cli
    from app.core.config import get_settings

    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("GENREC_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        good = CliRunner().invoke(cli, ["items", "import", str(_one_item(tmp_path))])
        bad_file = tmp_path / "bad.jsonl"
        bad_file.write_text('{"item_id": "2", "txt": "typo"}\n')
        bad = CliRunner().invoke(cli, ["items", "import", str(bad_file)])
    finally:
        get_settings.cache_clear()
    assert good.exit_code == 0, good.output
    assert "imported 1 item(s)" in good.output and "1 new" in good.output
    assert bad.exit_code == 2
    assert f"{bad_file}, line 1: unknown key(s) txt" in bad.output.replace("\n", "")
    engine = make_engine(url)
    row = read_item(make_sessionmaker(engine), "1")
    engine.dispose()
    assert row is not None and row.text == "space"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"item_id": "imp-5", "attributes": {"sur": "\\ud800"}}', "attribute 'sur' must not"),
        ('{"item_id": "imp-16", "title": "bad \\ud800 title"}', "title must not contain"),
        ('{"item_id": "imp-17", "attributes": {"\\ud800k": "v"}}', "ud800k' must not contain"),
    ],
)
def test_import_refuses_lone_surrogates_with_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str
) -> None:
    """Stored, GET /v1/items/imp-5 was a 500; a title or name crashed the CLI."""
    from typer.testing import CliRunner

    from app.cli import app as cli
    from app.core.config import get_settings

    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("GENREC_DATABASE_URL", url)
    source = tmp_path / "surrogate.jsonl"
    source.write_text(line + "\n")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["items", "import", str(source)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    output = result.output.replace("\n", "")
    assert f"{source}, line 1: " in output and message in output
    assert "lone surrogate" in output


def test_a_csv_header_a_rule_cannot_name_is_an_import_error_naming_the_line(
    tmp_path: Path,
) -> None:
    source = tmp_path / "extra.csv"
    source.write_text("item_id,title,price,release year\nimp-11,Thing,9.99,1999\n")
    url = f"sqlite:///{tmp_path}/names.db"
    with pytest.raises(CatalogError, match="line 2: attribute name 'release year' cannot be"):
        import_records(url, read_catalog_file(source), str(source))
