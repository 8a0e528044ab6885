"""Compiling rules to item masks and score offsets over one loaded model's items.

Why: a filter tested item by item in Python would cost a loop over the
catalog per request. Instead a rule is resolved (``app.rules.resolve``) and
evaluated once over the whole catalog with numpy set operations on
per-attribute posting lists (``ItemTable``), giving a boolean vector in the
model's item order; boosts become one float vector of weights. The result
(``RulePlan``) is cached, so a filtered request costs one extra vector
operation on its batch (``app.rules.apply``), not a pass over the items.

Caches (``RuleCompiler``), both LRUs bounded in entries and in bytes (a
million-item catalog's plan is megabytes):

* plans, keyed by (model, revision, catalog revision, the rules as written):
  the hot path, one dict lookup per request;
* masks, keyed by (model, revision, catalog revision, canonical form): rules
  written differently but meaning the same share one mask.

The rules as written and the canonical form are keyed by a 128-bit BLAKE2b
digest, not the text: a rule at its limits is megabytes of JSON (64 leaves x
256 values x 256 characters), and 512 such keys per cache held gigabytes that
the byte budgets, counting tensors, never saw. A plan's weight counts the
canonical text it keeps too.

The catalog revision (``app.rules.catalog.AttributeIndex``) is in both keys,
and a new revision clears both caches: a catalog change is seen by the next
request. The model's ``revision`` is too, so a catalog extension of a
text-aware model (which appends items) gets masks of the new length.
"""

from __future__ import annotations

import hashlib
import math
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from app.rules.ast import AllOf, And, AnyOf, Exists, Node, Not, Or, Range, render
from app.rules.catalog import OTHER, AttributeIndex, Snapshot
from app.rules.errors import RuleError
from app.rules.resolve import resolve
from app.serving.loaded import LoadedModel

#: Entries each cache keeps (a mask is one byte per item).
CACHE_ENTRIES = 512
#: Bytes each cache keeps at most: at a million items a plan is about 6 MB (a mask, its
#: negation and a float offset), so 512 of them would be 3 GB; this keeps about 40.
CACHE_BYTES = 256 * 2**20

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """At most ``size`` entries and ``max_bytes`` (as ``weigh`` counts them), least
    recently used out first; the newest entry stays even when it alone is over."""

    def __init__(
        self, size: int, max_bytes: int | None = None, weigh: Callable[[V], int] | None = None
    ) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.weigh = weigh
        self.bytes = 0
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        self._data.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        weight = self.weigh(value) if self.weigh is not None else 0
        self._data[key] = (value, weight)
        self.bytes += weight
        while len(self._data) > 1 and (
            len(self._data) > self.size
            or (self.max_bytes is not None and self.bytes > self.max_bytes)
        ):
            _, (_, dropped) = self._data.popitem(last=False)
            self.bytes -= dropped

    def clear(self) -> None:
        self._data.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._data)


def _digest(key: Hashable) -> bytes:
    """A cache key of fixed size for rules of any size (see module doc)."""
    text = repr(key).encode("utf-8", "backslashreplace")
    return hashlib.blake2b(text, digest_size=16).digest()


def _tensor_bytes(tensor: Tensor | None) -> int:
    return 0 if tensor is None else tensor.numel() * tensor.element_size()


def _plan_bytes(plan: RulePlan) -> int:
    """What a cached plan holds: its vectors (the filter mask may also be in the mask
    cache; counted in both) and a cap's item x value matrix."""
    cap = 0
    if plan.cap is not None:
        m = plan.cap.membership
        cap = m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    vectors = _tensor_bytes(plan.keep) + _tensor_bytes(plan.drop) + _tensor_bytes(plan.offset)
    return vectors + cap + sys.getsizeof(plan.canonical)


@dataclass(frozen=True)
class ListRules:
    """A request's rules as written (not yet checked against the catalog).

    ``key`` identifies them for the plan cache: the raw query strings, or the
    JSON of the body's rules.
    """

    filter: Node | None = None
    boosts: tuple[tuple[Node, float], ...] = ()
    cap: tuple[str, int] | None = None
    mmr: float | None = None
    key: Hashable = None

    def __bool__(self) -> bool:
        return bool(self.filter is not None or self.boosts or self.cap or self.mmr is not None)


@dataclass(frozen=True)
class Cap:
    """At most ``limit`` items per value of ``attr``; ``membership`` (I, V) says which
    values each item has (a list attribute: several)."""

    attr: str
    limit: int
    membership: sp.csr_matrix


@dataclass(frozen=True)
class RulePlan:
    """What one request's rules do to its batch row (``app.rules.apply``)."""

    keep: Tensor | None  # (I,) bool on the model's device: True = may be returned
    drop: Tensor | None  # (I,) bool: ~keep, kept ready for the batch mask
    offset: Tensor | None  # (I,) float32: summed boost weights, in units of the score spread
    cap: Cap | None = None
    mmr: float | None = None
    canonical: str = ""  # the resolved filter, for logs and errors

    @property
    def diversifies(self) -> bool:
        """A cap or MMR: the list is re-ranked from a pool beyond k (``app.rules.diversity``)."""
        return self.cap is not None or self.mmr is not None


# --------------------------------------------------------------------------- evaluation


def _tag(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return "b", value
    if isinstance(value, int | float):
        return "n", _float(value)
    return "s", value


def _float(value: int | float) -> float:
    """A number as compared: an integer beyond a float's range (stored before PUT and
    import refused integers beyond 64 bits) as an infinity of its sign, never a 500."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _present(value: Any) -> bool:
    if isinstance(value, list):
        return any(element is not None for element in value)
    return value is not None


class ItemTable:
    """Per-attribute posting lists over one model's items for one catalog snapshot.

    Built lazily, one attribute at a time, when a rule first names it; a
    Python pass over the model's items per attribute and catalog revision.
    """

    def __init__(self, item_ids: Sequence[str], snapshot: Snapshot) -> None:
        self.item_ids = item_ids
        self.snapshot = snapshot
        self.n = len(item_ids)
        self._postings: dict[str, dict[tuple[str, Any], np.ndarray]] = {}
        self._numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _values(self, attr: str) -> list[Any]:
        lookup = self.snapshot.items.lookup
        return [None if (a := lookup(i)) is None else a.get(attr) for i in self.item_ids]

    def postings(self, attr: str) -> dict[tuple[str, Any], np.ndarray]:
        """(kind tag, value) -> indices of the items whose attribute is or contains it."""
        found = self._postings.get(attr)
        if found is None:
            lists: dict[tuple[str, Any], list[int]] = {}
            for index, value in enumerate(self._values(attr)):
                for element in value if isinstance(value, list) else (value,):
                    if element is not None and not isinstance(element, dict | list):
                        lists.setdefault(_tag(element), []).append(index)
            found = {k: np.unique(np.asarray(v, dtype=np.int64)) for k, v in lists.items()}
            self._postings[attr] = found
        return found

    def numbers(self, attr: str) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, values): every number the attribute holds (lists flattened)."""
        found = self._numbers.get(attr)
        if found is None:
            indices, values = [], []
            for (tag, value), items in self.postings(attr).items():
                if tag == "n":
                    indices.append(items)
                    values.append(np.full(items.size, value, dtype=np.float64))
            found = (
                (np.concatenate(indices), np.concatenate(values))
                if indices
                else (np.zeros(0, np.int64), np.zeros(0, np.float64))
            )
            self._numbers[attr] = found
        return found

    def present(self, attr: str) -> np.ndarray:
        """Items holding a value: not null, not a list of nulls only (``[]``, ``[null]``)."""
        lookup = self.snapshot.items.lookup
        return np.fromiter(
            ((a := lookup(i)) is not None and _present(a.get(attr)) for i in self.item_ids),
            dtype=bool,
            count=self.n,
        )

    def membership(self, attr: str) -> sp.csr_matrix:
        """(I, V) 0/1 matrix: item i has value v of ``attr`` (for per-value caps)."""
        postings = self.postings(attr)
        rows = [items for items in postings.values()]
        cols = [np.full(items.size, v, dtype=np.int64) for v, items in enumerate(rows)]
        if not rows:
            return sp.csr_matrix(np.zeros((self.n, 0), dtype=np.float32))
        r, c = np.concatenate(rows), np.concatenate(cols)
        data = np.ones(r.size, dtype=np.float32)
        return sp.csr_matrix((data, (r, c)), shape=(self.n, len(rows)))

    def evaluate(self, rule: Node) -> np.ndarray:
        """(I,) bool: the items ``rule`` (resolved) holds for."""
        if isinstance(rule, AnyOf):
            out = np.zeros(self.n, dtype=bool)
            postings = self.postings(rule.attr)
            for value in rule.values:
                hit = postings.get(_tag(value))
                if hit is not None:
                    out[hit] = True
            return out
        if isinstance(rule, AllOf):
            out = np.ones(self.n, dtype=bool)
            postings = self.postings(rule.attr)
            for value in rule.values:
                has = np.zeros(self.n, dtype=bool)
                hit = postings.get(_tag(value))
                if hit is not None:
                    has[hit] = True
                out &= has
            return out
        if isinstance(rule, Range):
            indices, values = self.numbers(rule.attr)
            ok = np.ones(values.size, dtype=bool)
            if rule.gt is not None:
                ok &= values > rule.gt
            if rule.gte is not None:
                ok &= values >= rule.gte
            if rule.lt is not None:
                ok &= values < rule.lt
            if rule.lte is not None:
                ok &= values <= rule.lte
            out = np.zeros(self.n, dtype=bool)
            out[indices[ok]] = True
            return out
        if isinstance(rule, Exists):
            return self.present(rule.attr)
        if isinstance(rule, Not):
            return ~self.evaluate(rule.rule)
        if isinstance(rule, And):
            out = np.ones(self.n, dtype=bool)
            for child in rule.rules:
                out &= self.evaluate(child)
            return out
        assert isinstance(rule, Or)
        out = np.zeros(self.n, dtype=bool)
        for child in rule.rules:
            out |= self.evaluate(child)
        return out


# --------------------------------------------------------------------------- the compiler


class RuleCompiler:
    """Rules -> ``RulePlan`` for one model, cached (see module doc). Thread-safe."""

    def __init__(
        self, index: AttributeIndex, entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES
    ) -> None:
        self.index = index
        self._plans: _Lru[Hashable, RulePlan] = _Lru(entries, max_bytes, _plan_bytes)
        self._masks: _Lru[Hashable, Tensor] = _Lru(entries, max_bytes, _tensor_bytes)
        self._tables: _Lru[Hashable, ItemTable] = _Lru(8)
        self._revision = -1
        self._lock = threading.Lock()
        self.compiled = 0  # masks built (cache misses), for tests and metrics

    def cached(self, model: LoadedModel, rules: ListRules) -> RulePlan | None:
        """The plan of ``rules`` if it is cached for the current catalog, else None; never
        waits (not on a compile holding the lock either): the event loop's fast path, with
        ``plan`` in a worker thread on a miss (``Recommender.rule_plan_async``)."""
        if not rules or rules.key is None:
            return None
        snapshot = self.index.snapshot()
        key = ((model.name, model.revision, model.n_items), snapshot.revision, _digest(rules.key))
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if snapshot.revision != self._revision:
                return None
            return self._plans.get(key)
        finally:
            self._lock.release()

    def plan(self, model: LoadedModel, rules: ListRules) -> RulePlan | None:
        """The compiled plan of ``rules`` for ``model``; None when there are none. A miss
        evaluates the rules over the catalog (seconds at 50k items after a change): call it
        off the event loop."""
        if not rules:
            return None
        snapshot = self.index.snapshot()
        model_key = (model.name, model.revision, model.n_items)
        key = (model_key, snapshot.revision, _digest(rules.key))
        with self._lock:
            if snapshot.revision != self._revision:
                self._plans.clear()  # the catalog changed: every mask may be stale
                self._masks.clear()
                self._tables.clear()
                self._revision = snapshot.revision
            cached = self._plans.get(key) if rules.key is not None else None
            if cached is not None:
                return cached
            plan = self._build(model, model_key, snapshot, rules)
            if rules.key is not None:
                self._plans.put(key, plan)
            return plan

    def _table(self, model: LoadedModel, model_key: Hashable, snapshot: Snapshot) -> ItemTable:
        table = self._tables.get(model_key)
        if table is None:
            table = ItemTable(model.item_ids, snapshot)
            self._tables.put(model_key, table)
        return table

    def _mask(
        self, model: LoadedModel, model_key: Hashable, snapshot: Snapshot, rule: Node
    ) -> tuple[str, Tensor]:
        canonical_rule = resolve(rule, snapshot.kinds)
        canonical = render(canonical_rule)
        key = (model_key, _digest(canonical))
        mask = self._masks.get(key)
        if mask is None:
            values = self._table(model, model_key, snapshot).evaluate(canonical_rule)
            mask = torch.from_numpy(values).to(model.device)
            self._masks.put(key, mask)
            self.compiled += 1
        return canonical, mask

    def _build(
        self, model: LoadedModel, model_key: Hashable, snapshot: Snapshot, rules: ListRules
    ) -> RulePlan:
        keep, canonical = None, ""
        if rules.filter is not None:
            canonical, keep = self._mask(model, model_key, snapshot, rules.filter)
        offset = None
        for rule, weight in rules.boosts:
            _, hit = self._mask(model, model_key, snapshot, rule)
            term = hit.float() * float(weight)
            offset = term if offset is None else offset + term
        cap = None
        if rules.cap is not None:
            attr, limit = rules.cap
            kinds = snapshot.kinds.get(attr)
            if kinds is None:
                resolve(Exists.model_construct(op="exists", attr=attr), snapshot.kinds)
            elif kinds <= {OTHER}:
                raise RuleError(f"cap: attribute '{attr}' holds objects; a cap needs plain values")
            cap = Cap(attr, limit, self._table(model, model_key, snapshot).membership(attr))
        drop = ~keep if keep is not None else None
        return RulePlan(
            keep=keep, drop=drop, offset=offset, cap=cap, mmr=rules.mmr, canonical=canonical
        )
