"""Removed catalog items on the approximate path: banned like ``exclude``, so the index
over-fetches for them, and a list with more removed items than the index may fetch is
ranked exactly (``too_many_masked``); either way k long, and without them."""

from __future__ import annotations

import numpy as np

from app.serving.batcher import rank_batch, rank_exact
from app.serving.recommend import _banned
from app.serving.removed import RemovedItems
from app.serving.retrieval import TOO_MANY_MASKED
from tests.app.serving.ann_catalog import N_ITEMS, indexed_model, job, user_states


def test_the_index_over_fetches_for_removed_items_or_falls_back() -> None:
    model = indexed_model(nprobe=32, max_candidates=500)
    model.item_index = {str(i): i for i in range(N_ITEMS)}
    model.revision = "1"
    state = user_states(1)[0]
    best = rank_exact(model, [job(state, k=50)])[0].items
    removed = RemovedItems()
    removed.update((str(i), True) for i in best[:30])  # the user's 30 best are gone
    banned = _banned(model, (), [str(best[30])], removed.indices(model))  # and one excluded
    ranked = rank_batch(model, [job(state, k=50, banned=banned)])[0]
    assert ranked.retrieval == "ann" and len(ranked.items) == 50
    assert not set(ranked.items) & set(best[:31])
    exact = rank_exact(model, [job(state, k=50, banned=banned)])[0]
    assert len(set(ranked.items) & set(exact.items)) >= 45  # the next best are still found

    removed.update((str(i), True) for i in range(600))  # more than GENREC_ANN_MAX_CANDIDATES
    many = removed.indices(model)
    ranked = rank_batch(model, [job(state, k=50, banned=_banned(model, (), (), many))])[0]
    assert ranked.retrieval == TOO_MANY_MASKED and len(ranked.items) == 50
    assert not np.isin(ranked.items, many).any()
