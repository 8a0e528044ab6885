"""Filters and boosts on an indexed model: the exact top-k from index candidates.

A filter keeps some items; a boost (``app.rules.apply``) adds
``offset_i * spread`` to item i's score, ``spread`` being the population
standard deviation of *all* the user's scores. Searched like an unruled list
(the catalog's best, then masked), a narrow filter left too few candidates and
a boosted list looked as if it needed the whole score row, so on a
million-item catalog such lists were ranked exactly (4-21 requests/s).
Neither is needed:

* **The spread without the row.** For an inner-product scorer
  (``InnerProductScorer``: ``score_i = q . t_i + c``), the variance of the
  scores over items is ``q^T Sigma q``, Sigma being the covariance of the item
  table's rows: a (D', D') matrix computed once per scorer (one pass over the
  table, chunked: 2.0 s at 1,000,000 x 257 on the development CPU, done when
  the index is opened, ``AnnLoader``) instead of an I-wide product per request.
  The constant ``c`` does not move a standard deviation.
* **Which items can reach the top-k.** Only kept items can; among them, items
  with equal offsets keep their order under the boost, so the boosted top-k is
  the top-k of the union of each *offset group's* own top-k by plain score. So
  the index is searched once per group of kept items, restricted to that
  group (a FAISS ``IDSelector``, probing more lists the rarer the group), and a
  group of at most ``GENREC_ANN_MAX_CANDIDATES`` items is taken whole. A filter
  alone is one group. A plan has a handful of groups (one per distinct sum of
  boost weights: with r boost rules at most 2^r); one with more than
  ``MAX_GROUPS`` is ranked exactly.

So a filtered or boosted list from the index is the exact list up to the
index's recall, as an unruled one is. Its boost unit is the same number as the
exact path's up to float rounding (tested: ``tests/app/serving/test_ann_rules.py``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import faiss
import numpy as np
import torch
from torch import Tensor

from app.rules.compile import RulePlan
from training.models.base import InnerProductScorer

#: A plan whose offsets take more distinct values than this is ranked exactly.
MAX_GROUPS = 8
#: Item rows per step of the covariance pass (bounds its temporary memory).
CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class OffsetGroup:
    """The kept items that share one boost offset: the items themselves when the group is
    small enough to be taken whole, else a selector restricting a search to them.

    Never both: at a million items a searched group's item list was 8 bytes an item
    (8 MB for a boost over the whole catalog) next to its 1-bit-an-item bitmap, held as
    long as the plan, outside the rule compiler's byte budget (docs/performance.md).
    """

    offset: float
    size: int  # how many kept items have this offset
    items: np.ndarray | None  # (size,) int64 item indices, ascending; only when taken whole
    selector: faiss.IDSelector | None  # only when searched
    bitmap: np.ndarray | None  # the selector's bits; FAISS does not own them, so they live here

    @property
    def whole(self) -> bool:
        """Taken whole (its items are candidates, scored exactly) rather than searched."""
        return self.items is not None

    @property
    def nbytes(self) -> int:
        """Bytes of arrays the group holds."""
        return sum(a.nbytes for a in (self.items, self.bitmap) if a is not None)


class ScoreSpread:
    """The spread of a scorer's scores over all items, from its item table's covariance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scorer: object = None  # the scorer ``_covariance`` belongs to
        self._covariance: Tensor | None = None  # (D', D') float64

    def of(self, scorer: InnerProductScorer, queries: Tensor) -> Tensor:
        """(B,) float32 spread per query row (B, D'); 1 where it is 0 or not finite, as
        ``app.rules.apply._spread`` does with the whole row."""
        covariance = self.covariance_of(scorer)
        q = queries.to(device=covariance.device, dtype=torch.float64)
        variance = ((q @ covariance) * q).sum(dim=1).clamp_min(0.0)
        spread = variance.sqrt().float()
        return torch.where(torch.isfinite(spread) & (spread > 0), spread, torch.ones_like(spread))

    def covariance_of(self, scorer: InnerProductScorer) -> Tensor:
        """Sigma of the table's rows, computed once per scorer (a catalog extension is a new
        scorer with more rows, so it gets its own, on its first boosted request)."""
        with self._lock:
            if self._scorer is not scorer or self._covariance is None:
                self._covariance = table_covariance(scorer)
                self._scorer = scorer
            return self._covariance


def table_covariance(scorer: InnerProductScorer) -> Tensor:
    """(D', D') float64 population covariance of the scorer's (I, D') inner-product rows,
    centred before the product so that a large mean (an item bias column) cannot cancel
    the variance away.

    The rows are made a chunk at a time (``inner_product_rows``): never a float64 copy
    of the table (2 GB at 1M x 256), nor a float32 one of a table with a bias column
    or of the unit rows (1 GB each, which raised every server's start-up peak).
    """
    n = 0
    mean: Tensor | None = None
    for rows in _row_chunks(scorer):
        total_rows = rows.double().sum(dim=0)
        mean = total_rows if mean is None else mean + total_rows
        n += rows.shape[0]
    if mean is None:
        raise ValueError("the scorer has no item rows")
    mean32 = (mean / n).float()
    total = torch.zeros(len(mean), len(mean), dtype=torch.float64, device=mean.device)
    for rows in _row_chunks(scorer):
        centred = rows.float() - mean32
        total += (centred.T @ centred).double()  # float32 products: 2.0 s, float64 5-7 s at 1M
    return total / n


def _row_chunks(scorer: InnerProductScorer) -> Iterator[Tensor]:
    """The scorer's inner-product rows, ``CHUNK_ROWS`` at a time, until they run out."""
    start = 0
    while len(rows := scorer.inner_product_rows(start, start + CHUNK_ROWS)):
        yield rows.detach()
        start += CHUNK_ROWS


class OffsetGroups:
    """Per plan, its offset groups (``OffsetGroup``), for as long as the plan lives.

    Keyed by the plan's identity and dropped when the plan is collected
    (``weakref.finalize``): the rule compiler's cache decides how long a plan
    lives, and a plan is a few megabytes at a million items, so this cache
    must not keep one alive. Groups of at most ``whole_up_to`` items are taken
    whole (``GENREC_ANN_MAX_CANDIDATES``: ``AnnRetrieval`` scores them as an include
    list); larger ones are searched.
    """

    def __init__(self, whole_up_to: int) -> None:
        self.whole_up_to = whole_up_to
        self._groups: dict[int, tuple[OffsetGroup, ...] | None] = {}

    def of(self, plan: RulePlan) -> tuple[OffsetGroup, ...] | None:
        """The plan's groups, or None when it has more than ``MAX_GROUPS`` distinct offsets."""
        key = id(plan)
        if key in self._groups:
            return self._groups[key]
        groups = offset_groups(plan, self.whole_up_to)
        # Two scoring threads may both compute a new plan's groups; either result is right.
        if self._groups.setdefault(key, groups) is groups:
            weakref.finalize(plan, self._groups.pop, key, None)
        return self._groups[key]

    def __len__(self) -> int:
        return len(self._groups)


def offset_groups(plan: RulePlan, whole_up_to: int) -> tuple[OffsetGroup, ...] | None:
    """The items ``plan`` keeps (all, without a filter), by distinct boost offset (zero
    included; one group without a boost); None beyond ``MAX_GROUPS``. A group of at most
    ``whole_up_to`` items keeps its items, a larger one a FAISS selector over them."""
    vector = plan.offset if plan.offset is not None else plan.keep
    assert vector is not None, "a plan with neither a filter nor a boost has no groups"
    n = int(vector.shape[0])
    kept = (
        np.flatnonzero(plan.keep.detach().cpu().numpy())
        if plan.keep is not None
        else np.arange(n, dtype=np.int64)
    )
    if plan.offset is not None:
        offset = plan.offset.detach().float().cpu().numpy()[kept]
    else:
        offset = np.zeros(kept.size, dtype=np.float32)
    values, inverse = np.unique(offset, return_inverse=True)
    if len(values) > MAX_GROUPS:
        return None
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(values) + 1))
    groups = []
    for g, value in enumerate(values):
        items = kept[order[bounds[g] : bounds[g + 1]]].astype(np.int64)
        if items.size <= whole_up_to:
            groups.append(OffsetGroup(float(value), int(items.size), items, None, None))
            continue
        member = np.zeros(n, dtype=bool)
        member[items] = True
        bitmap = np.packbits(member, bitorder="little")  # FAISS reads bit i of byte i >> 3
        # The length in bytes: FAISS reads no byte past it (the item count there let an id
        # beyond the catalog read past the bitmap).
        selector = faiss.IDSelectorBitmap(bitmap.size, faiss.swig_ptr(bitmap))
        groups.append(OffsetGroup(float(value), int(items.size), None, selector, bitmap))
    return tuple(groups)
