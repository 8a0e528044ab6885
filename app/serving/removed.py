"""``RemovedItems``: the catalog's removed item ids, and per model their ``RemovedMask``.

``DELETE /v1/items/{id}`` (``genrec items remove``) marks an item removed in
the items table; ``app.catalog.sync.CatalogSync`` reads that with every other
catalog change (the same keyset poll, so every replica learns of it) and
feeds it here. The recommender puts the model's mask on every list job it
builds (``RankJob.removed``); the batcher applies it with the job's other
masks: one broadcast OR of the batch's mask on the exact path (``_mask``), a
row lookup per candidate on the index path (``candidate_mask``), whose search
over-fetches one candidate per removed item, or falls back, as for ``exclude``.

Why a mask of its own rather than more ``banned`` ids: banned ids are scattered
into the batch's mask one job at a time, and a candidate list is tested against
them with ``np.isin``; 1,000 removed items cost ``_mask`` ~0.35 ms per batch of 64
lists that way against ~0.05 ms as one broadcast row (1,682 items;
``benchmarks/removed_mask.py``, docs/performance.md "Items removed from the
catalog"). The mask is built once per (model revision, removal revision), like
the rules' compiled masks (``app.rules.compile``), and shared read-only by every
request until the catalog's removals or the model change: a request pays a dict
lookup.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import faiss
import numpy as np
import torch
from torch import Tensor

from app.serving.loaded import LoadedModel

#: Model revisions whose masks are kept (production versions, experiment pins).
CACHE_ENTRIES = 32


@dataclass(frozen=True, eq=False)
class RemovedMask:
    """One model revision's removed items: their indices and a boolean row, read-only."""

    indices: np.ndarray  # (R,) int64, sorted
    row: np.ndarray  # (I,) bool: True = removed
    _tensors: dict[str, Tensor] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: (selector, its bits): FAISS does not own a bitmap selector's bits, so they live here.
    _selector: list[tuple[faiss.IDSelector, np.ndarray]] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, indices: np.ndarray, n_items: int) -> RemovedMask:
        row = np.zeros(n_items, dtype=bool)
        row[indices] = True
        indices.flags.writeable = False
        row.flags.writeable = False
        return cls(indices, row)

    @property
    def size(self) -> int:
        """How many of the model's items are removed (what an index search over-fetches)."""
        return int(self.indices.size)

    def tensor(self, device: torch.device) -> Tensor:
        """The row as a (I,) bool tensor on ``device``; made once per device."""
        key = str(device)
        found = self._tensors.get(key)
        if found is None:
            with self._lock:
                found = self._tensors.setdefault(key, torch.tensor(self.row, device=device))
        return found

    def kept_selector(self) -> faiss.IDSelector:
        """A FAISS selector of the items *not* removed, for an index search to skip the
        removed ones itself (``app.serving.retrieval``): over-fetching one candidate per
        removed item instead sent every list to the exact path once the catalog had more
        removed items than ``GENREC_ANN_MAX_CANDIDATES``. Made once per mask."""
        if not self._selector:
            with self._lock:
                if not self._selector:
                    bits = np.packbits(~self.row, bitorder="little")  # bit i of byte i >> 3
                    # The length in bytes: FAISS reads no byte past it (an id beyond is
                    # not kept); the item count there let it read past the bitmap.
                    selector = faiss.IDSelectorBitmap(bits.size, faiss.swig_ptr(bits))
                    self._selector.append((selector, bits))
        return self._selector[0][0]


class RemovedItems:
    """Removed item ids (replaced copy-on-write) and their masks per model. Thread-safe."""

    def __init__(self) -> None:
        self._state: tuple[int, frozenset[str]] = (0, frozenset())  # (revision, ids), swapped
        self._lock = threading.Lock()
        self._masks: OrderedDict[Hashable, RemovedMask | None] = OrderedDict()

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
                self._masks.clear()
            return changed

    def mask(self, model: LoadedModel) -> RemovedMask | None:
        """``model``'s mask of the removed items it knows; None when it knows none."""
        revision, ids = self._state
        if not ids:
            return None
        key = (model.name, model.revision, model.n_items, revision)
        with self._lock:
            if key in self._masks:
                self._masks.move_to_end(key)
                return self._masks[key]
        index = model.item_index
        known = np.array(sorted(index[i] for i in ids if i in index), dtype=np.int64)
        built = RemovedMask.of(known, model.n_items) if known.size else None
        with self._lock:
            if revision == self._state[0]:  # not stale: a removal did not land meanwhile
                self._masks[key] = built
                while len(self._masks) > CACHE_ENTRIES:
                    self._masks.popitem(last=False)
        return built

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._state[1]
