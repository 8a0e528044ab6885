"""The one in-memory form of an interaction data set.

Every reader (MovieLens, CSV/Parquet, the service's own log) returns an
``Interactions``; every splitter takes and returns them; every model trains on
them. Ids are strings outside genrec and dense indices inside, so the id maps
travel with the arrays instead of being rebuilt (and silently re-ordered) by
each consumer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class IdMap:
    """Bidirectional map between external string ids and dense indices ``0..n-1``."""

    ids: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {external: i for i, external in enumerate(self.ids)}
        if len(index) != len(self.ids):
            raise ValueError("IdMap ids must be unique")
        object.__setattr__(self, "_index", index)

    @classmethod
    def from_values(cls, values: np.ndarray | list[str]) -> IdMap:
        """Build a map from raw ids, ordered by first appearance after sorting.

        Sorting (numerically when every id is an integer) makes the map depend
        only on the set of ids, so two readers of the same data agree.
        """
        unique = {str(v) for v in values}
        if all(u.lstrip("-").isdigit() for u in unique):
            ordered = sorted(unique, key=int)
        else:
            ordered = sorted(unique)
        return cls(tuple(ordered))

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, external: object) -> bool:
        return external in self._index

    def index(self, external: str) -> int:
        """Dense index of ``external``; KeyError if unknown."""
        return self._index[external]

    def get(self, external: str, default: int = -1) -> int:
        return self._index.get(external, default)

    def indices(self, externals: np.ndarray | list[str], default: int = -1) -> np.ndarray:
        """Vectorised lookup; unknown ids map to ``default``."""
        return np.fromiter(
            (self._index.get(str(e), default) for e in externals),
            dtype=np.int64,
            count=len(externals),
        )

    def external(self, index: int) -> str:
        return self.ids[index]


@dataclass(frozen=True)
class Interactions:
    """Interaction records over fixed user and item id maps.

    Arrays are aligned, one entry per record: ``users`` and ``items`` are dense
    indices into ``user_ids`` / ``item_ids``; ``ratings`` is the explicit rating
    (1.0 for implicit data); ``timestamps`` are unix seconds (0 when unknown).
    Splits keep the full id maps so train and test share one index space.
    """

    users: np.ndarray  # (N,) int64
    items: np.ndarray  # (N,) int64
    ratings: np.ndarray  # (N,) float32
    timestamps: np.ndarray  # (N,) int64
    user_ids: IdMap
    item_ids: IdMap
    explicit: bool = True  # whether ratings carry information beyond "interacted"
    item_meta: dict[str, dict[str, object]] | None = None  # external item id -> title, genres, text
    #: (N,) bool, for a log of ratings and events without one (clicks): whether each record
    #: carries a rating of its own. None: every record is alike (all rated, or implicit).
    #: A rating model trains on ``rated_part()``, as ``genrec train`` reads the log for it.
    rated: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.users)
        if not (len(self.items) == len(self.ratings) == len(self.timestamps) == n):
            raise ValueError("Interactions arrays must have equal length")
        if self.rated is not None and len(self.rated) != n:
            raise ValueError("Interactions arrays must have equal length")

    def rated_part(self) -> Interactions:
        """The records that carry a rating of their own (all when ``rated`` is None), in
        the same id maps: a click read as a rating of 1.0 is the bottom of a 1-5 scale,
        so a rating model never fits it."""
        if self.rated is None:
            return self
        return dataclasses.replace(self.subset(self.rated), rated=None)

    @classmethod
    def from_arrays(
        cls,
        users: np.ndarray | list[Any],
        items: np.ndarray | list[Any],
        ratings: np.ndarray | list[Any] | None = None,
        timestamps: np.ndarray | list[Any] | None = None,
        *,
        explicit: bool | None = None,
        item_meta: dict[str, dict[str, object]] | None = None,
    ) -> Interactions:
        """Build from raw external ids (any type; converted to str)."""
        users_raw = np.asarray(users).astype(str)
        items_raw = np.asarray(items).astype(str)
        user_map = IdMap.from_values(users_raw)
        item_map = IdMap.from_values(items_raw)
        n = len(users_raw)
        rating_arr = (
            np.ones(n, dtype=np.float32)
            if ratings is None
            else np.asarray(ratings, dtype=np.float32)
        )
        ts_arr = (
            np.zeros(n, dtype=np.int64)
            if timestamps is None
            else np.asarray(timestamps, dtype=np.int64)
        )
        return cls(
            users=user_map.indices(users_raw),
            items=item_map.indices(items_raw),
            ratings=rating_arr,
            timestamps=ts_arr,
            user_ids=user_map,
            item_ids=item_map,
            explicit=(ratings is not None) if explicit is None else explicit,
            item_meta=item_meta,
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, mask: np.ndarray) -> Interactions:
        """Records selected by a boolean mask or index array; id maps unchanged."""
        return Interactions(
            users=self.users[mask],
            items=self.items[mask],
            ratings=self.ratings[mask],
            timestamps=self.timestamps[mask],
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            explicit=self.explicit,
            item_meta=self.item_meta,
            rated=None if self.rated is None else self.rated[mask],
        )

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(order, last): the records sorted by user, item and time (stable, so records of one
        pair at the same second keep their order), and which sorted record is its pair's
        latest: the greatest timestamp, a tie going to the later record."""
        order = np.lexsort((self.timestamps, self.items, self.users))
        u, i = self.users[order], self.items[order]
        last = np.ones(len(u), dtype=bool)
        if len(u) > 1:
            last[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
        return order, last

    def to_csr(self, values: str = "ratings") -> sp.csr_matrix:
        """(U, I) sparse matrix; ``values`` is "ratings" or "ones". Duplicates keep the last."""
        data = self.ratings if values == "ratings" else np.ones(len(self), dtype=np.float32)
        # Keep the latest record of a duplicated (user, item) pair instead of summing them.
        order, last = self._pairs()
        u, i, d = self.users[order], self.items[order], data[order]
        m = sp.csr_matrix(
            (d[last].astype(np.float32), (u[last], i[last])),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        m.sort_indices()
        return m

    def latest_per_pair(self) -> Interactions:
        """One record per (user, item) pair, with the rating and time of its latest record
        (the one ``to_csr``, and so every history a model or serving reads, keeps).

        What a validation splits: records split one by one put one copy of a repeated
        pair in the training part and another in the held-out part, where a top-k figure
        masks it as already seen and a rating figure has it leaked (on a log with every
        pair twice, popularity's NDCG@10 was 0). The pair stays at the place of its first
        record, so a log that grows by appending keeps every earlier pair where it was and
        a split drawn by record position with the same seed draws the same records for
        unchanged users (the retrain gate relies on it). Without repeats: ``self``.
        """
        order, last = self._pairs()
        if last.all():
            return self
        starts = np.flatnonzero(np.r_[True, last[:-1]])
        first = np.minimum.reduceat(order, starts)  # each pair's first record, by position
        latest = order[last]  # each pair's latest record, pairs in the same order
        by_place = np.argsort(first)
        place, source = first[by_place], latest[by_place]
        return Interactions(
            users=self.users[place],
            items=self.items[place],
            ratings=self.ratings[source],
            timestamps=self.timestamps[source],
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            explicit=self.explicit,
            item_meta=self.item_meta,
            rated=None if self.rated is None else self.rated[source],
        )

    def binarize(self, threshold: float | None) -> Interactions:
        """Implicit view: keep records with rating > threshold (all when None), rating := 1."""
        keep = self if threshold is None else self.subset(self.ratings > threshold)
        return Interactions(
            users=keep.users,
            items=keep.items,
            ratings=np.ones(len(keep), dtype=np.float32),
            timestamps=keep.timestamps,
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            explicit=False,
            item_meta=self.item_meta,
        )

    def compact(self) -> Interactions:
        """Drop users and items with no records and re-index (for training on a subset)."""
        users_present = np.unique(self.users)
        items_present = np.unique(self.items)
        user_map = IdMap(tuple(self.user_ids.ids[u] for u in users_present))
        item_map = IdMap(tuple(self.item_ids.ids[i] for i in items_present))
        user_remap = np.full(self.n_users, -1, dtype=np.int64)
        user_remap[users_present] = np.arange(len(users_present))
        item_remap = np.full(self.n_items, -1, dtype=np.int64)
        item_remap[items_present] = np.arange(len(items_present))
        return Interactions(
            users=user_remap[self.users],
            items=item_remap[self.items],
            ratings=self.ratings,
            timestamps=self.timestamps,
            user_ids=user_map,
            item_ids=item_map,
            explicit=self.explicit,
            item_meta=self.item_meta,
            rated=self.rated,
        )

    @property
    def rating_range(self) -> tuple[float, float]:
        if len(self) == 0:
            return (1.0, 5.0)
        return float(self.ratings.min()), float(self.ratings.max())

    def fingerprint(self) -> str:
        """sha256 over the records in external ids: the manifest's data fingerprint."""
        import hashlib

        h = hashlib.sha256()
        order = np.lexsort((self.timestamps, self.items, self.users))
        h.update(
            np.asarray(self.user_ids.ids, dtype=object)[self.users[order]].astype(str).tobytes()
        )
        h.update(
            np.asarray(self.item_ids.ids, dtype=object)[self.items[order]].astype(str).tobytes()
        )
        h.update(self.ratings[order].tobytes())
        h.update(self.timestamps[order].tobytes())
        return h.hexdigest()
