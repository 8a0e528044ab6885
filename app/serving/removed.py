"""``RemovedItems``: the catalog's removed item ids, and per model their item indices.

``DELETE /v1/items/{id}`` (``genrec items remove``) marks an item removed in
the items table; ``app.catalog.sync.CatalogSync`` reads that with every other
catalog change (the same keyset poll, so every replica learns of it) and
feeds it here. The recommender adds ``indices(model)`` to the banned items of
every list it ranks (``Recommender._banned``), so a removed item is masked on
the exact path and the approximate one over-fetches for it or falls back, as
for ``exclude``.

Per request this costs a dict lookup: the index array of a model is built
once per (model revision, removal revision), like the rules' compiled masks
(``app.rules.compile``), and shared read-only by every request until the
catalog's removals or the model change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable

import numpy as np

from app.serving.loaded import LoadedModel

#: Model revisions whose index arrays are kept (production versions, experiment pins).
CACHE_ENTRIES = 32

_NONE = np.zeros(0, dtype=np.int64)
_NONE.flags.writeable = False


class RemovedItems:
    """Removed item ids (replaced copy-on-write) and their indices per model. Thread-safe."""

    def __init__(self) -> None:
        self._state: tuple[int, frozenset[str]] = (0, frozenset())  # (revision, ids), swapped whole
        self._lock = threading.Lock()
        self._indices: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    @property
    def ids(self) -> frozenset[str]:
        return self._state[1]

    @property
    def revision(self) -> int:
        return self._state[0]

    def update(self, rows: Iterable[tuple[str, bool]]) -> int:
        """Merge (item id, removed?) rows; returns how many items changed state."""
        with self._lock:
            revision, before = self._state
            ids = set(before)
            for item_id, removed in rows:
                if removed:
                    ids.add(item_id)
                else:
                    ids.discard(item_id)
            changed = len(ids ^ before)
            if changed:
                self._state = (revision + 1, frozenset(ids))
                self._indices.clear()
            return changed

    def indices(self, model: LoadedModel) -> np.ndarray:
        """(R,) int64 sorted, read-only: ``model``'s indices of the removed items it knows."""
        revision, ids = self._state
        if not ids:
            return _NONE
        key = (model.name, model.revision, model.n_items, revision)
        with self._lock:
            found = self._indices.get(key)
            if found is not None:
                self._indices.move_to_end(key)
                return found
        index = model.item_index
        known = sorted(index[i] for i in ids if i in index)
        array = np.asarray(known, dtype=np.int64) if known else _NONE
        array.flags.writeable = False
        with self._lock:
            if revision == self._state[0]:  # not stale: a removal did not land meanwhile
                self._indices[key] = array
                while len(self._indices) > CACHE_ENTRIES:
                    self._indices.popitem(last=False)
        return array

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._state[1]
