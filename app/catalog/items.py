"""Catalog items: the rules an item must meet, the items table, and the file import.

``PUT /v1/items/{id}`` and ``genrec items import`` share ``validate_item`` and
``save_items``, so both refuse the same things with the same message.

Attribute values are what business rules can test (``app.rules``): null, true/false,
a finite number, a string, or a flat list of one of those kinds (``"genres":
["Comedy", "Drama"]``). And an attribute keeps its kind across the catalog: once
``year`` holds numbers, an item with ``"year": "1995"`` is refused (a number
stays a number), so ``year>=1990`` means the same for every item. The kind is
checked against the database's record of it (``attribute_kinds``) in the
transaction that writes the items: a replica's in-memory catalog lags the others'
writes by its poll interval, and a check outside the write races with a writer
beside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import (
    command_sessions,
    database_problem,
    session_scope,
)
from app.repository import ItemRow, NewItem, claim_attribute_kinds, get_item, upsert_items
from app.rules.ast import ATTR_NAME, ATTR_NAME_TEXT
from app.rules.catalog import BOOL, NUMBER, OTHER, STRING, value_kind
from app.schemas_catalog import (
    MAX_ATTRIBUTE_NAME,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_TEXT,
    MAX_TITLE,
)
from app.schemas_fields import INT64_MAX, INT64_MIN, clip_int, id_problem, unstorable


class CatalogError(ValueError):
    """A catalog item breaks a rule (id, sizes, attributes); the message says which."""


# --------------------------------------------------------------------------- validation


def validate_item(
    item_id: str,
    title: str | None,
    text: str | None,
    attributes: dict[str, Any] | None,
    max_id_length: int = 256,
) -> NewItem:
    """The one rule set of PUT and import; empty title/text mean none."""
    if reason := id_problem(item_id, "item_id", max_id_length):
        raise CatalogError(reason)
    if item_id.endswith("/similar"):  # ids may hold "/", but this URL is another resource
        raise CatalogError(
            f"item_id {item_id!r} ends in '/similar': GET /v1/items/{item_id} is the similar-"
            "items list of the id before it, so the item could never be read back"
        )
    if title is not None and len(title) > MAX_TITLE:
        raise CatalogError(f"title is {len(title)} characters long; the limit is {MAX_TITLE}")
    if text is not None and len(text) > MAX_TEXT:
        raise CatalogError(f"text is {len(text)} characters long; the limit is {MAX_TEXT}")
    for what, value in (("item_id", item_id), ("title", title), ("text", text)):
        # NUL (Postgres text cannot hold it) or a lone surrogate (not Unicode: it cannot be
        # encoded for the driver or the JSON answer), as every request field (schemas_fields)
        if value is not None and (reason := unstorable(value)):
            raise CatalogError(f"{what} {reason}")
    attributes = attributes or {}
    if len(attributes) > MAX_ATTRIBUTES:  # first: the checks below take time per attribute
        raise CatalogError(
            f"the item has {len(attributes)} attributes; the limit is {MAX_ATTRIBUTES}"
        )
    try:
        encoded = json.dumps(attributes, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"attributes must be plain JSON: {exc}") from None
    _check_strings(attributes)
    size = len(encoded.encode())
    if size > MAX_ATTRIBUTES_BYTES:
        raise CatalogError(
            f"attributes are {size} bytes as JSON; the limit is {MAX_ATTRIBUTES_BYTES}"
        )
    for name, value in attributes.items():
        if not ATTR_NAME.fullmatch(name):
            raise CatalogError(
                f"attribute name {_quoted(name)} cannot be named by a rule: names match "
                f"{ATTR_NAME_TEXT} (ASCII letters, digits, _ . -; not starting with a digit, "
                ". or -), e.g. release_year"
            )
        if len(name) > MAX_ATTRIBUTE_NAME:
            raise CatalogError(
                f"attribute name '{name[:40]}...' is {len(name)} characters long; the limit is "
                f"{MAX_ATTRIBUTE_NAME}"
            )
        for element in value if isinstance(value, list) else (value,):
            wide = isinstance(element, int) and not isinstance(element, bool)
            if wide and not INT64_MIN <= element <= INT64_MAX:
                raise CatalogError(
                    f"attribute '{name}': integer {clip_int(element)} is outside the 64-bit range"
                )
        if value_kind(value) == OTHER:
            raise CatalogError(
                f"attribute '{name}' must be null, true/false, a number, a string or a flat "
                "list of one of those kinds"
            )
    return NewItem(item_id, title or None, text or None, attributes)


def _check_strings(attributes: dict[str, Any]) -> None:
    """Every attribute name and string value (list elements too) must be storable."""
    for name, value in attributes.items():
        if not isinstance(name, str):
            raise CatalogError(f"attribute name {name!r} is not a string")
        if reason := unstorable(name):
            raise CatalogError(f"attribute name {ascii(name)[:60]} {reason}")
        for element in value if isinstance(value, list) else (value,):
            if isinstance(element, str) and (reason := unstorable(element)):
                raise CatalogError(f"attribute '{_shown(name)}' {reason}")


def _quoted(name: str) -> str:
    return repr(_shown(name)) if name.isprintable() else ascii(_shown(name))


def _shown(name: str) -> str:
    return name if len(name) <= 40 else name[:40] + "..."


_KIND_WORDS = {NUMBER: "a number", STRING: "a string", BOOL: "true/false"}


def check_kinds(
    attributes: dict[str, Any], kinds: dict[str, frozenset[str]] | Any, where: str = ""
) -> None:
    """Each attribute's kind must be the kind the catalog already holds for it."""
    for name, value in attributes.items():
        kind = value_kind(value)
        known = kinds.get(name)
        if kind is None or not known or kind in known:
            continue
        held = " and ".join(_KIND_WORDS.get(k, k) for k in sorted(known))
        raise CatalogError(
            f"{where}attribute '{name}' is {_KIND_WORDS.get(kind, kind)} here, but the catalog "
            f"holds {held} for it (an attribute keeps one kind)"
        )


def save_items(
    sessions: sessionmaker[Session], items: Sequence[NewItem], where: Sequence[str] = ()
) -> dict[str, str]:
    """Upsert ``items`` in one transaction; per id "created" / "updated" / "restored" (it
    was removed: ``app.catalog.removal``) / "unchanged".

    In the same transaction, first: each attribute's kind is claimed in and read
    back from ``attribute_kinds`` (``claim_attribute_kinds``: an attribute new to
    the catalog gets the kind of the first of ``items`` that has a value for it),
    and an item whose value is of another kind raises ``CatalogError``, prefixed
    with its entry of ``where`` (an import names the line), so nothing is written.
    Two writers creating the same new id at once: the loser's INSERT hits the
    primary key; one retry then finds the row and updates it.
    """
    try:
        with session_scope(sessions) as session:
            return _checked_upsert(session, items, where)
    except IntegrityError:
        with session_scope(sessions) as session:
            return _checked_upsert(session, items, where)


def _checked_upsert(
    session: Session, items: Sequence[NewItem], where: Sequence[str]
) -> dict[str, str]:
    first: dict[str, str] = {}
    for item in items:
        for name, value in item.attributes.items():
            kind = value_kind(value)
            if kind is not None:
                first.setdefault(name, kind)
    held = claim_attribute_kinds(session, first)
    for n, item in enumerate(items):
        check_kinds(item.attributes, held, where[n] if n < len(where) else "")
    return upsert_items(session, items, datetime.now(UTC))


def read_item(sessions: sessionmaker[Session], item_id: str) -> ItemRow | None:
    with session_scope(sessions) as session:
        return get_item(session, item_id)


class FileRecord(Protocol):
    """What ``import_records`` reads of a file record (``training.data.catalog_file``).

    Read-only properties, so that frozen dataclasses (``CatalogRecord``) match.
    """

    @property
    def item_id(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def attributes(self) -> dict[str, Any]: ...
    @property
    def line(self) -> int: ...


def import_records(
    database_url: str,
    records: Sequence[FileRecord],
    source: str,
    max_id_length: int = 256,
    migrate: bool = True,
) -> dict[str, int]:
    """``genrec items import``: validate every record, then write all in one transaction.

    All or nothing: the first bad record (an attribute of another kind than the
    catalog's or an earlier record's included) raises ``CatalogError`` naming
    ``source`` and its line before anything is written. A removed item in the file
    is restored, as a PUT restores it. Running servers pick the items up at their
    next reload poll. Returns counts per outcome.
    """
    items = []
    for record in records:
        try:
            items.append(
                validate_item(
                    record.item_id, record.title, record.text, record.attributes, max_id_length
                )
            )
        except CatalogError as exc:
            raise CatalogError(f"{source}, line {record.line}: {exc}") from None
    lines = [f"{source}, line {record.line}: " for record in records]
    try:
        with command_sessions(database_url, migrate) as sessions:
            outcome = save_items(sessions, items, lines)
    except SQLAlchemyError as exc:
        raise CatalogError(
            f"cannot write the catalog to {database_problem(database_url, exc)}"
        ) from None
    counts = {"created": 0, "updated": 0, "restored": 0, "unchanged": 0}
    for result in outcome.values():
        counts[result] += 1
    return counts
