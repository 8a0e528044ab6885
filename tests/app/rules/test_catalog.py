"""``AttributeIndex`` keeps the kinds each attribute holds up to date by counting, one
changed item at a time: after any sequence of updates they are what a recount of the
whole catalog finds."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest

from app.rules import catalog
from app.rules.catalog import AttributeIndex, Snapshot, value_kind

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


def test_recorded_kinds_keep_an_attribute_no_item_holds_without_hiding_held_ones() -> None:
    index = AttributeIndex()
    index.update([("a", {"year": 1999, "sale": True, "note": None})])
    # Both held: the record changes nothing rules see (no new revision).
    assert not index.declare({"year": frozenset({"number"}), "sale": frozenset({"bool"})})
    index.update([("a", {"year": 1999, "note": None})])  # the sale ends
    assert index.snapshot().kinds == {
        "year": frozenset({"number"}),
        "sale": frozenset({"bool"}),  # recorded, though no item holds it
        "note": frozenset(),  # only nulls, nothing recorded
    }
    before = index.revision
    assert index.declare({"note": frozenset({"string"})})  # its first value, elsewhere
    assert index.revision == before + 1  # cached rule plans are dropped
    assert index.snapshot().kinds["note"] == frozenset({"string"})
    assert index.snapshot().kinds["year"] == frozenset({"number"})  # held, not recorded now


def test_every_snapshot_keeps_its_items_through_later_changes_and_folds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A snapshot is a base shared with later ones plus an overlay of changes: with folds
    every few changes, each snapshot still reads as the plain dict of its revision."""
    monkeypatch.setattr(catalog, "FOLD_MIN", 3)
    monkeypatch.setattr(catalog, "FOLD_SHARE", 2)
    rng = random.Random(1)
    index = AttributeIndex()
    expected: dict[str, dict[str, Any]] = {}
    taken: list[tuple[Snapshot, dict[str, dict[str, Any]]]] = []
    for _ in range(300):
        batch = []
        for _ in range(rng.randint(1, 5)):
            attributes = {a: rng.choice(VALUES) for a in ("g", "y") if rng.random() > 0.3}
            batch.append((f"i{rng.randint(0, 40)}", attributes))
        index.update(batch)
        for item_id, attributes in batch:
            if attributes or item_id in expected:
                expected[item_id] = attributes
        taken.append((index.snapshot(), {k: dict(v) for k, v in expected.items()}))
    for snapshot, then in taken:
        items = snapshot.items
        assert len(items) == len(then) and sorted(items) == sorted(then)
        assert {k: dict(v) for k, v in items.items()} == then
        assert all(items.lookup(k) == v and k in items for k, v in then.items())
        assert items.lookup("absent") is None and "absent" not in items
        with pytest.raises(KeyError):
            items["absent"]


def test_names_and_short_strings_are_shared_and_the_row_is_not_kept() -> None:
    """Rows from the database carry their own copies of every name and value; the index
    keeps one of each short string, and its own lists (a row changed later is not seen)."""

    def fresh(text: str) -> str:
        return "".join(list(text))  # a new str object, as a decoded row has

    genres = [fresh("Drama"), fresh("Comedy")]
    index = AttributeIndex()
    index.update(
        [
            ("a", {fresh("genres"): genres, fresh("note"): "x" * 100}),
            ("b", {fresh("genres"): [fresh("Drama")], fresh("note"): "x" * 100}),
        ]
    )
    genres.append("Horror")
    items = index.snapshot().items
    (name_a, kept_a), (name_b, kept_b) = items["a"].items(), items["b"].items()
    assert name_a[0] is name_b[0] and name_a[1] == ["Drama", "Comedy"]
    assert name_a[1][0] is name_b[1][0]
    assert kept_a[1] == kept_b[1] == "x" * 100
