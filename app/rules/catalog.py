"""``AttributeIndex``: this process's copy of every catalog item's attributes.

``app.catalog.sync.CatalogSync`` feeds it the rows it polls from the items
table (the same keyset read that keeps text-aware models up to date); every
change bumps ``revision``, which is part of every compiled rule's cache key,
so a catalog change is seen by the next request (``app.rules.compile``).

Readers take a ``Snapshot`` (immutable: the dict is replaced, never mutated),
so a request compiles against one consistent catalog while the poll thread
builds the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Kinds of attribute values rules can test; lists count as their elements' kind.
NUMBER, STRING, BOOL, OTHER = "number", "string", "bool", "other"


def value_kind(value: Any) -> str | None:
    """The rule kind of one attribute value (None for null; a list: its elements' kind,
    ``other`` when they are mixed or nested)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, list):
        if any(isinstance(v, list | dict) for v in value):
            return OTHER
        kinds = {value_kind(v) for v in value} - {None}
        if not kinds:
            return None
        return next(iter(kinds)) if len(kinds) == 1 and OTHER not in kinds else OTHER
    return OTHER


@dataclass(frozen=True)
class Snapshot:
    """One revision of the catalog's attributes and the kinds each attribute holds."""

    revision: int
    items: Mapping[str, Mapping[str, Any]]
    kinds: Mapping[str, frozenset[str]] = field(default_factory=dict)


def _kinds(items: Mapping[str, Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    seen: dict[str, set[str]] = {}
    for attributes in items.values():
        for name, value in attributes.items():
            kind = value_kind(value)
            bucket = seen.setdefault(name, set())
            if kind is not None:
                bucket.add(kind)
    return {name: frozenset(kinds) for name, kinds in seen.items()}


class AttributeIndex:
    """Item id -> attributes, replaced copy-on-write on every change (see module doc)."""

    def __init__(self) -> None:
        self._snapshot = Snapshot(0, {}, {})
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def revision(self) -> int:
        return self._snapshot.revision

    def update(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Merge (item id, attributes) rows; returns how many items changed."""
        with self._lock:
            current = self._snapshot
            items = dict(current.items)
            changed = 0
            for item_id, attributes in rows:
                if items.get(item_id, {}) != attributes:
                    items[item_id] = dict(attributes)
                    changed += 1
            if changed:
                self._snapshot = Snapshot(current.revision + 1, items, _kinds(items))
            return changed
