"""``AttributeIndex``: this process's copy of every catalog item's attributes.

``app.catalog.sync.CatalogSync`` feeds it the rows it polls from the items
table (the same keyset read that keeps text-aware models up to date); every
change bumps ``revision``, which is part of every compiled rule's cache key,
so a catalog change is seen by the next request (``app.rules.compile``).

Readers take a ``Snapshot`` (immutable: nothing a snapshot holds is mutated once
published), so a request compiles against one consistent catalog while the poll
thread builds the next one. Why a snapshot's items are two dicts (``ItemAttributes``:
a large base and a small overlay of the items changed since): copying one dict of
every item per change cost O(catalog) per poll page, so the first read of N items in
pages of 1,000 copied N^2/2,000 entries (at 1,000,000 items ~38 CPU seconds against
~13 now, and ~77 ms per change of 1,000 items against ~19;
``benchmarks/catalog_memory.py``, docs/performance.md "The catalog sync's memory at
1M items"). A change now copies the overlay only, and folds it into a new base once
it holds a sixteenth of the base: amortised, a changed item is copied ~16 times.
Attribute names, and string values up to ``SHARED_STRING_MAX`` characters, are
interned: each row comes from the database with its own copies of "genres" and
"Drama", which were most of an item's bytes.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Kinds of attribute values rules can test; lists count as their elements' kind.
NUMBER, STRING, BOOL, OTHER = "number", "string", "bool", "other"

#: The overlay of a snapshot's items is folded into a new base once it holds more
#: than the base's size over this (or ``FOLD_MIN`` items, for a small catalog).
FOLD_SHARE = 16
FOLD_MIN = 1024
#: String values up to this long are interned (names of things that repeat: genres,
#: brands); a longer one is kept as it came (free text: interning would cost a slot of
#: the interpreter's table and save nothing).
SHARED_STRING_MAX = 64

_MISSING: Any = object()


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


class ItemAttributes(Mapping[str, Mapping[str, Any]]):
    """Item id -> attributes of one snapshot: ``base`` overlaid by ``overlay`` (the items
    changed since the base was made); neither dict is mutated once published."""

    __slots__ = ("_base", "_len", "_overlay", "lookup")

    def __init__(
        self,
        base: dict[str, Mapping[str, Any]] | None = None,
        overlay: dict[str, Mapping[str, Any]] | None = None,
        length: int | None = None,
    ) -> None:
        self._base = base if base is not None else {}
        self._overlay = overlay if overlay is not None else {}
        self._len = len(self._base) if length is None else length
        #: ``lookup(item_id)``: its attributes, None when the catalog lacks it; the base's
        #: own ``dict.get`` while the overlay is empty (a pass over a model's items pays
        #: one C call per item then).
        self.lookup: Callable[[str], Mapping[str, Any] | None] = (
            self._base.get if not self._overlay else self._layered_get
        )

    def _layered_get(self, item_id: str) -> Mapping[str, Any] | None:
        found = self._overlay.get(item_id, _MISSING)
        return self._base.get(item_id) if found is _MISSING else found

    def __getitem__(self, item_id: str) -> Mapping[str, Any]:
        found = self.lookup(item_id)
        if found is None:
            raise KeyError(item_id)
        return found

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._overlay or item_id in self._base

    def __iter__(self) -> Iterator[str]:
        yield from self._base
        for item_id in self._overlay:
            if item_id not in self._base:
                yield item_id

    def __len__(self) -> int:
        return self._len


@dataclass(frozen=True)
class Snapshot:
    """One revision of the catalog's attributes and the kinds each attribute holds."""

    revision: int
    items: ItemAttributes
    kinds: Mapping[str, frozenset[str]] = field(default_factory=dict)


def _shared(value: Any) -> Any:
    """``value`` with its short strings (also a list's) interned; a new list, never the
    row's own."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= SHARED_STRING_MAX else value
    if isinstance(value, list):
        top = SHARED_STRING_MAX
        return [sys.intern(v) if type(v) is str and len(v) <= top else v for v in value]
    return value


class _KindCounts:
    """How many items hold each attribute, and each kind under it: a change updates the
    counts of the attributes it touches, so a one-item update costs what the item holds,
    not a pass over the catalog (at 50,000 items the recount took ~260 ms per change).
    An attribute held only with null values still exists (``exists`` rules resolve it)."""

    def __init__(self) -> None:
        self.holders: dict[str, int] = {}
        self.by_kind: dict[str, dict[str, int]] = {}

    def add(self, attributes: Mapping[str, Any], sign: int) -> None:
        for name, value in attributes.items():
            self.holders[name] = self.holders.get(name, 0) + sign
            kind = value_kind(value)
            if kind is not None:
                counts = self.by_kind.setdefault(name, {})
                counts[kind] = counts.get(kind, 0) + sign

    def kinds_of(self, name: str) -> frozenset[str] | None:
        """The kinds ``name`` holds now; None once no item holds it."""
        if self.holders.get(name, 0) <= 0:
            self.holders.pop(name, None)
            self.by_kind.pop(name, None)
            return None
        return frozenset(k for k, n in self.by_kind.get(name, {}).items() if n > 0)


class AttributeIndex:
    """Item id -> attributes, copy-on-write per change: the overlay is copied, the base
    shared until the overlay is folded into a new one (see module doc)."""

    def __init__(self) -> None:
        self._snapshot = Snapshot(0, ItemAttributes(), {})
        self._lock = threading.Lock()
        self._counts = _KindCounts()  # of the current snapshot's items; under the lock
        self._held: dict[str, frozenset[str]] = {}  # kinds the items hold now (counted)
        self._declared: dict[str, frozenset[str]] = {}  # the database's record (``declare``)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def revision(self) -> int:
        return self._snapshot.revision

    def update(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Merge (item id, attributes) rows; returns how many items changed."""
        with self._lock:
            current = self._snapshot
            base, overlay = current.items._base, dict(current.items._overlay)
            length = len(current.items)
            touched: set[str] = set()
            changed = 0
            for item_id, attributes in rows:
                known = overlay.get(item_id, _MISSING)
                if known is _MISSING:
                    known = base.get(item_id, _MISSING)
                before = {} if known is _MISSING else known
                if before != attributes:
                    length += known is _MISSING
                    overlay[item_id] = {sys.intern(k): _shared(v) for k, v in attributes.items()}
                    self._counts.add(before, -1)
                    self._counts.add(attributes, +1)
                    touched.update(before, attributes)
                    changed += 1
            if changed:
                for name in touched:
                    now = self._counts.kinds_of(name)
                    if now is None:
                        self._held.pop(name, None)
                    else:
                        self._held[name] = now
                if len(overlay) > max(FOLD_MIN, len(base) // FOLD_SHARE):
                    base = base | overlay
                    overlay = {}
                items = ItemAttributes(base, overlay, length)
                self._snapshot = Snapshot(current.revision + 1, items, self._kinds())
            return changed

    def declare(self, kinds: Mapping[str, frozenset[str]]) -> bool:
        """Take the database's record of attribute kinds (``attribute_kinds``); whether
        the snapshot's kinds changed (a new revision then).

        Why: the counted kinds forget an attribute once no item holds it (or holds only
        nulls), while the catalog keeps its kind for good. A client's ``sale:true``
        filter or boost then turned into a 422 "unknown attribute" the moment the last
        sale ended; with the recorded kind it resolves, and matches nothing.
        """
        with self._lock:
            if dict(kinds) == self._declared:
                return False
            self._declared = dict(kinds)
            current = self._snapshot
            merged = self._kinds()
            if merged == current.kinds:
                return False
            self._snapshot = Snapshot(current.revision + 1, current.items, merged)
            return True

    def _kinds(self) -> dict[str, frozenset[str]]:
        """The kinds rules resolve against: what items hold, else what the database
        recorded for an attribute no item holds with a value (under the lock)."""
        kinds = dict(self._held)
        for name, recorded in self._declared.items():
            if not kinds.get(name):
                kinds[name] = recorded
        return kinds
