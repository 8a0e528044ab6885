"""Diversity re-ranks of one list: a cap per attribute value, and MMR over item vectors.

Both are greedy selections over a pool of the row's best unmasked items:

* **cap** (``cap=genres:3``): walk the pool best first and take an item only
  while every value it has is under the cap (a list attribute counts the
  item towards each of its values; an item without the attribute is never
  capped). Vectorised per step: one sparse (pool, values) product says
  which pool items a full value now blocks.
* **MMR** (``mmr=0.7``, Carbonell & Goldstein 1998): each step takes the item
  maximising ``λ·relevance − (1−λ)·max cosine to the items already taken``,
  relevance being the score min-max scaled over the pool, cosine over the
  model's item vectors (co-occurrence columns for models without vectors:
  ``LoadedModel.pool_similarity``, the pool's items gathered once).

With both, MMR picks among the items the cap still allows. The pool starts
at ``max(20·k, 200)`` items and grows (×4) until k items are taken or every
unmasked item is in it, so the list keeps k items whenever the catalog has
k that satisfy the cap. Items come back in selection order, with their
(boosted) scores. ``diversify_candidates`` does the same over an index's
candidates instead of a whole row (``app.serving.retrieval``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from app.rules.compile import Cap
from app.serving.loaded import LoadedModel

POOL_FACTOR, POOL_MIN = 20, 200


def diversify(
    model: LoadedModel, row: Tensor, k: int, cap: Cap | None, mmr: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(item indices, scores) of the re-ranked top-k of one masked score row (-inf = masked)."""
    available = int(torch.isfinite(row).sum())
    wanted = min(k, available)
    if wanted == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    size = min(available, pool_size(k))
    while True:
        values, indices = torch.topk(row, size)
        pool = indices.cpu().numpy()
        scores = values.cpu().numpy().astype(np.float32)
        chosen = _greedy(model, pool, scores, wanted, cap, mmr)
        if len(chosen) >= wanted or size >= available:
            break
        size = min(available, size * 4)
    picked = np.asarray(chosen, dtype=np.int64)
    return pool[picked], scores[picked]


def pool_size(k: int) -> int:
    """Items the first pool of a list of ``k`` holds (before any growth)."""
    return max(POOL_FACTOR * k, POOL_MIN)


def diversify_candidates(
    model: LoadedModel,
    items: np.ndarray,
    scores: np.ndarray,
    k: int,
    cap: Cap | None,
    mmr: float | None,
    complete: bool,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``diversify`` over a candidate set: ``items`` (C,) unmasked, their ``scores``.

    With ``complete`` the candidates are every item the list may hold (an
    include list), and this is ``diversify`` restricted to them, pool growth
    included. Otherwise they are an index's best guesses at the row's top
    items (``app.serving.retrieval``): the first pool, the best
    ``pool_size(k)`` of them, is the exact path's first pool up to the index's
    recall, and a list that pool cannot fill is not answered here (None; the
    exact path grows its pool over the whole catalog).
    """
    available = items.size
    wanted = min(k, available)
    if not complete and available < pool_size(k):
        return None
    if wanted == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    order = np.argsort(-scores, kind="stable")
    size = min(available, pool_size(k))
    while True:
        pool, pool_scores = items[order[:size]], scores[order[:size]].astype(np.float32)
        chosen = _greedy(model, pool, pool_scores, wanted, cap, mmr)
        if len(chosen) >= wanted:
            break
        if not complete:
            return None
        if size >= available:
            break
        size = min(available, size * 4)
    picked = np.asarray(chosen, dtype=np.int64)
    return pool[picked], pool_scores[picked]


def _greedy(
    model: LoadedModel,
    pool: np.ndarray,
    scores: np.ndarray,
    k: int,
    cap: Cap | None,
    mmr: float | None,
) -> list[int]:
    """Positions in ``pool`` (sorted best first) chosen greedily under the cap and MMR."""
    size = pool.size
    open_ = np.ones(size, dtype=bool)  # neither taken nor blocked by the cap
    membership = cap.membership[pool] if cap is not None else None
    counts = np.zeros(membership.shape[1], dtype=np.float32) if membership is not None else None
    relevance = max_similarity = similarity = None
    if mmr is not None:
        low, high = float(scores.min()), float(scores.max())
        relevance = (scores - low) / (high - low) if high > low else np.ones(size, np.float32)
        max_similarity = np.zeros(size, dtype=np.float32)
        with torch.inference_mode():
            similarity = model.pool_similarity(pool)
    chosen: list[int] = []
    while len(chosen) < k and open_.any():
        if relevance is None or max_similarity is None:
            j = int(np.argmax(open_))  # the best open item: the pool is sorted
        else:
            objective = mmr * relevance - (1 - mmr) * max_similarity  # type: ignore[operator]
            j = int(np.argmax(np.where(open_, objective, -np.inf)))
        chosen.append(j)
        open_[j] = False
        if membership is not None and cap is not None and counts is not None:
            counts += membership[j].toarray().ravel()
            full = (counts >= cap.limit).astype(np.float32)
            if full.any():
                open_ &= ~(membership @ full > 0)
        if max_similarity is not None and similarity is not None:
            with torch.inference_mode():
                similar = similarity.row(j)
            np.maximum(max_similarity, similar, out=max_similarity)
    return chosen
