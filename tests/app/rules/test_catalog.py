"""``AttributeIndex`` keeps the kinds each attribute holds up to date by counting, one
changed item at a time: after any sequence of updates they are what a recount of the
whole catalog finds."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from app.rules.catalog import AttributeIndex, value_kind

VALUES: list[Any] = [None, 1, 2.5, "s", True, [1, 2], ["a"], [1, "a"], [], {"x": 1}, [None]]


def _recount(items: Mapping[str, Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """The kinds by a pass over every item (what the index computed per change before)."""
    seen: dict[str, set[str]] = {}
    for attributes in items.values():
        for name, value in attributes.items():
            bucket = seen.setdefault(name, set())
            if (kind := value_kind(value)) is not None:
                bucket.add(kind)
    return {name: frozenset(kinds) for name, kinds in seen.items()}


def test_kinds_after_random_changes_equal_a_recount_of_the_catalog() -> None:
    rng = random.Random(0)
    index = AttributeIndex()
    for step in range(2_000):
        batch = []
        for _ in range(rng.randint(1, 4)):  # an item may change twice in one batch
            attributes = {a: rng.choice(VALUES) for a in ("g", "y", "t", "z") if rng.random() > 0.3}
            batch.append((f"i{rng.randint(0, 30)}", attributes))
        before = index.revision
        changed = index.update(batch)
        snapshot = index.snapshot()
        assert snapshot.revision == before + (1 if changed else 0)
        assert snapshot.kinds == _recount(snapshot.items), step


def test_an_attribute_no_item_holds_any_more_is_gone_and_a_null_one_exists() -> None:
    index = AttributeIndex()
    index.update([("a", {"year": 1999, "note": None}), ("b", {"year": "unknown"})])
    assert index.snapshot().kinds == {"year": frozenset({"number", "string"}), "note": frozenset()}
    index.update([("b", {"year": 2001}), ("a", {})])
    assert index.snapshot().kinds == {"year": frozenset({"number"})}
    assert index.update([("b", {"year": 2001})]) == 0  # unchanged: same revision
