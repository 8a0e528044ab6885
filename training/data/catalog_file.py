"""Item catalog files for ``genrec items import``: CSV or JSONL, one item per record.

The catalog is the service's own store of item metadata (title, text,
attributes). Text-aware models (ConvMF) score an item nobody has rated yet
from its text, so a catalog file is how a batch of new items reaches them.

Formats (UTF-8, a BOM is tolerated):

* ``.csv`` — a header with ``item_id`` and optionally ``title``, ``text`` and
  ``attributes``. ``attributes`` holds a JSON object; any other column becomes
  one string attribute named after the column (empty cells are left out).
  Empty ``title`` / ``text`` cells mean "none".
* ``u.item`` — MovieLens 100K's item file (``|``-separated, latin-1): title
  without the year, attributes ``genres`` (a list) and ``year`` (a number,
  from the title, else the release date; left out when neither has one).
* ``.jsonl`` / ``.ndjson`` — one JSON object per line:
  ``{"item_id": "42", "title": "...", "text": "...", "attributes": {...}}``;
  only ``item_id`` is required, unknown keys are refused (a typo such as
  ``"txt"`` must not silently drop an item's text). Blank lines are skipped.

Bad input raises ``DataError`` naming the file and line, before anything is
written, so an import is all or nothing. Length limits and the rest of the
business rules live with the catalog itself (``app.catalog``), which applies
the same rules to ``PUT /v1/items/{item_id}``; this module only parses.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.data.encoding import first_non_utf8
from training.data.errors import DataError
from training.data.movielens import read_ml100k_items
from training.data.strict_json import DuplicateKey, loads, unreadable_reason

#: The keys a JSONL record may have.
JSONL_KEYS = frozenset({"item_id", "title", "text", "attributes"})
#: CSV columns with a meaning of their own; every other column is a string attribute.
CSV_COLUMNS = ("item_id", "title", "text", "attributes")


@dataclass(frozen=True)
class CatalogRecord:
    """One item read from a catalog file; ``line`` is where it starts (1-based)."""

    item_id: str
    title: str | None
    text: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    line: int = 0


def read_catalog_file(path: str | Path) -> list[CatalogRecord]:
    """All records of a ``.csv`` / ``.jsonl`` / ``.ndjson`` / ``u.item`` catalog file, in file order.

    Raises ``DataError`` for a missing file, an unknown extension, a malformed
    record, an item id that appears twice (which of the two rows was meant
    is a guess the importer refuses to make), or a file without a single item
    (a 0-byte or blank ``.jsonl``, a CSV with only its header): as a 0-byte CSV
    always was, since an export that wrote nothing is a failed export, and
    "imported 0 item(s)" made it look like a successful one.
    """
    path = Path(path)
    if path.is_dir():  # not "not found": the path is there, it is just not a file
        raise DataError(f"{path}: is a directory, not a catalog file")
    if not path.is_file():
        raise DataError(f"catalog file not found: {path}")
    suffix = path.suffix.lower()
    if path.name == "u.item":
        records = _read_u_item(path)
    elif suffix == ".csv":
        records = _read_csv(path)
    elif suffix in (".jsonl", ".ndjson"):
        records = _read_jsonl(path)
    else:
        raise DataError(
            f"{path}: unknown catalog file type '{suffix or '(none)'}'; use .csv or .jsonl"
        )
    if not records:
        raise DataError(f"{path}: no items in the file; nothing to import")
    _check_unique(path, records)
    return records


# --------------------------------------------------------------------------- CSV


def _read_csv(path: Path) -> list[CatalogRecord]:
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file; expected a header with item_id") from None
    except csv.Error as exc:
        raise DataError(f"{path}, line 1: cannot read the header: {exc}") from None
    columns = [c.strip() for c in header]
    _check_header(path, columns)
    records = []
    start = reader.line_num + 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                records.append(_csv_record(path, start, columns, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}, line {start}: cannot read the record: {exc}") from None
    return records


def _read_text(path: Path) -> str:
    """The file as text (UTF-8, a BOM tolerated); ``DataError`` naming the line and byte
    that is not UTF-8. Decoded whole, not as the file is read: a text stream decodes in
    chunks, so its error named the line the reader was at when a chunk failed (hundreds
    of lines early, or the header) and a position within that chunk, not in the file."""
    try:
        return path.read_bytes().removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}, {first_non_utf8(path)}; save the file as UTF-8") from None


def _check_header(path: Path, columns: list[str]) -> None:
    if "item_id" not in columns:
        raise DataError(
            f"{path}, line 1: the header has no item_id column (columns: {', '.join(columns)})"
        )
    seen: set[str] = set()
    for column in columns:
        if not column:
            raise DataError(f"{path}, line 1: the header has an empty column name")
        if column in seen:
            raise DataError(f"{path}, line 1: column '{column}' appears twice in the header")
        seen.add(column)


def _csv_record(path: Path, line: int, columns: list[str], row: list[str]) -> CatalogRecord:
    if len(row) != len(columns):
        raise DataError(
            f"{path}, line {line}: {len(row)} fields, the header has {len(columns)} columns"
        )
    cells = dict(zip(columns, row, strict=True))
    attributes = _csv_attributes(path, line, cells.get("attributes", ""))
    for column in columns:
        if column not in CSV_COLUMNS and cells[column].strip():
            attributes[column] = cells[column]
    return CatalogRecord(
        item_id=_item_id(path, line, cells["item_id"].strip()),
        title=cells.get("title") or None,
        text=cells.get("text") or None,
        attributes=attributes,
        line=line,
    )


def _csv_attributes(path: Path, line: int, raw: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    value = _json_object(f"{path}, line {line}: attributes", raw)
    if not isinstance(value, dict):
        raise DataError(
            f"{path}, line {line}: attributes must be a JSON object, got {type(value).__name__}"
        )
    return value


# --------------------------------------------------------------------------- ML-100K u.item


def _read_u_item(path: Path) -> list[CatalogRecord]:
    """ML-100K's ``u.item`` (genre names from ``u.genre`` beside it when present)."""
    meta = read_ml100k_items(path.parent) or {}
    records = []
    for line, (item_id, entry) in enumerate(meta.items(), start=1):
        genres = entry.get("genres")
        attributes: dict[str, Any] = {"genres": list(genres) if isinstance(genres, list) else []}
        if isinstance(entry.get("year"), int):
            attributes["year"] = entry["year"]
        title = entry.get("title")
        records.append(
            CatalogRecord(
                item_id=item_id,
                title=str(title) if title else None,
                text=None,
                attributes=attributes,
                line=line,
            )
        )
    return records


# --------------------------------------------------------------------------- JSONL


def _json_object(where: str, raw: str) -> Any:
    """One JSON value of a catalog line (a JSONL record, a CSV ``attributes`` cell), or a
    ``DataError`` that starts with ``where``. Where in the value JSON failed is said as a
    character offset, not ``str(exc)``'s own "line L column C": its lines are the value's,
    not the file's (a JSONL record cut short on line 5 read "line 5: ... line 2 column 1",
    counting the record's newline)."""
    try:
        return loads(raw)
    except DuplicateKey as exc:
        raise DataError(f"{where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON at character {exc.pos}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{where}: not valid JSON: {unreadable_reason(exc)}") from None


def _read_jsonl(path: Path) -> list[CatalogRecord]:
    records = []
    for line_no, raw in enumerate(io.StringIO(_read_text(path)), start=1):
        if raw.strip():
            records.append(_jsonl_record(path, line_no, raw))
    return records


def _jsonl_record(path: Path, line: int, raw: str) -> CatalogRecord:
    where = f"{path}, line {line}"
    value = _json_object(where, raw)
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - JSONL_KEYS)
    if unknown:
        raise DataError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(JSONL_KEYS))}"
        )
    if "item_id" not in value:
        raise DataError(f"{where}: item_id is missing")
    item_id = value["item_id"]
    if isinstance(item_id, bool) or not isinstance(item_id, str | int):
        raise DataError(f"{where}: item_id must be a string, got {type(item_id).__name__}")
    attributes = value.get("attributes")
    attributes = {} if attributes is None else attributes
    if not isinstance(attributes, dict):
        raise DataError(
            f"{where}: attributes must be a JSON object, got {type(attributes).__name__}"
        )
    return CatalogRecord(
        item_id=_item_id(path, line, str(item_id).strip()),
        title=_optional_text(where, "title", value.get("title")),
        text=_optional_text(where, "text", value.get("text")),
        attributes=attributes,
        line=line,
    )


def _optional_text(where: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: {key} must be a string or null, got {type(value).__name__}")
    return value or None


# --------------------------------------------------------------------------- shared checks


def _item_id(path: Path, line: int, item_id: str) -> str:
    if not item_id:
        raise DataError(f"{path}, line {line}: item_id is empty")
    return item_id


def _check_unique(path: Path, records: list[CatalogRecord]) -> None:
    first_line: dict[str, int] = {}
    for record in records:
        if record.item_id in first_line:
            raise DataError(
                f"{path}, line {record.line}: item_id '{record.item_id}' already appears "
                f"on line {first_line[record.item_id]}"
            )
        first_line[record.item_id] = record.line
