"""Removed catalog items in the batcher: the exact path masks them with one broadcast
row, the index's search skips them (a FAISS selector of the items kept), however many
there are; either way k long, without them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from app.serving.batcher import RankJob, _mask, rank_batch, rank_exact
from app.serving.removed import RemovedItems, RemovedMask
from tests.app.serving.ann_catalog import N_ITEMS, NONE, indexed_model, user_states


def _mask_of(model: SimpleNamespace, indices: np.ndarray) -> RemovedMask:
    removed = RemovedItems()
    removed.update((str(i), True) for i in indices)
    mask = removed.mask(model)  # type: ignore[arg-type]  # a stand-in for LoadedModel
    assert mask is not None
    return mask


def _job(state: torch.Tensor | None, removed: RemovedMask, banned: object = NONE) -> RankJob:
    return RankJob(state, np.asarray(banned, dtype=np.int64), None, 50, removed=removed)


def test_the_batch_mask_takes_the_removed_row_for_every_job() -> None:
    removed = RemovedMask.of(np.array([1, 4]), 6)
    other = RemovedMask.of(np.array([0]), 6)
    jobs = [_job(None, removed, [5]), _job(None, removed), RankJob(None, NONE, None, 5)]
    assert _mask(jobs, 6, torch.device("cpu")).tolist() == [
        [False, True, False, False, True, True],
        [False, True, False, False, True, False],
        [False] * 6,
    ]
    everyone = _mask([_job(None, removed), _job(None, other)], 6, torch.device("cpu"))
    assert everyone[:, [0, 1, 4]].tolist() == [[False, True, True], [True, False, False]]


def test_an_allowed_removed_item_stays_masked() -> None:
    """``include`` narrows what may be listed; it cannot bring a removed item back."""
    removed = RemovedMask.of(np.array([1, 4]), 6)
    job = RankJob(None, NONE, np.array([1, 2, 4], dtype=np.int64), 3, removed=removed)
    assert _mask([job], 6, torch.device("cpu")).tolist() == [[True, True, False, True, True, True]]


def test_the_index_skips_removed_items_however_many() -> None:
    model = indexed_model(nprobe=32, max_candidates=500)
    model.item_index = {str(i): i for i in range(N_ITEMS)}
    model.revision = "1"
    state = user_states(1)[0]
    best = rank_exact(model, [RankJob(state, NONE, None, 50)])[0].items
    removed = _mask_of(model, best[:30])  # the user's 30 best are gone
    ranked = rank_batch(model, [_job(state, removed, best[30:31])])[0]  # and one excluded
    assert ranked.retrieval == "ann" and len(ranked.items) == 50
    assert not set(ranked.items) & set(best[:31])
    exact = rank_exact(model, [_job(state, removed, best[30:31])])[0]
    assert not set(exact.items) & set(best[:31]) and len(exact.items) == 50
    assert len(set(ranked.items) & set(exact.items)) >= 45  # the next best are still found

    # More removed items than GENREC_ANN_MAX_CANDIDATES: over-fetching one candidate per
    # removed item sent such a list to the exact path (too_many_masked); the search now
    # skips them and the list still comes from the index.
    many = _mask_of(model, np.arange(0, N_ITEMS, 2)[:600])
    ranked = rank_batch(model, [_job(state, many)])[0]
    assert ranked.retrieval == "ann" and len(ranked.items) == 50
    assert not np.isin(ranked.items, many.indices).any()
    exact = rank_exact(model, [_job(state, many)])[0]
    assert len(set(ranked.items) & set(exact.items)) >= 45


def test_a_filtered_search_skips_removed_items_too() -> None:
    """A rule's group search is restricted to the group's items *and* the items kept."""
    from app.rules.compile import RulePlan

    model = indexed_model(candidates=100, nprobe=32, max_candidates=300)
    model.item_index = {str(i): i for i in range(N_ITEMS)}
    model.revision = "1"
    state = user_states(1)[0]
    keep = torch.zeros(N_ITEMS, dtype=torch.bool)
    keep[: N_ITEMS // 2] = True  # a filter keeping the first half: searched, not taken whole
    plan = RulePlan(keep=keep, drop=~keep, offset=None)
    best = rank_exact(model, [RankJob(state, NONE, None, 50, rules=plan)])[0].items
    removed = _mask_of(model, best[:20])
    ranked = rank_batch(model, [_job_with(state, removed, plan)])[0]
    assert ranked.retrieval == "ann" and len(ranked.items) == 50
    assert not np.isin(ranked.items, removed.indices).any()
    assert (ranked.items < N_ITEMS // 2).all()  # the filter still holds
    exact = rank_exact(model, [_job_with(state, removed, plan)])[0]
    assert len(set(ranked.items) & set(exact.items)) >= 45


def _job_with(state: torch.Tensor, removed: RemovedMask, plan: object) -> RankJob:
    return RankJob(state, NONE, None, 50, rules=plan, removed=removed)  # type: ignore[arg-type]


def test_the_kept_selector_reads_only_its_own_bitmap() -> None:
    """FAISS's bitmap selector takes the bitmap's length in bytes and tests an id against
    it before reading; given the item count instead, an id past the model's items (an
    index wider than the model) read memory beyond the bitmap."""
    mask = RemovedMask.of(np.array([1, 9]), 10)  # 10 items: a 2-byte bitmap
    selector = mask.kept_selector()
    assert selector.n == 2
    assert [selector.is_member(i) for i in (0, 1, 8, 9, 15, 16, 79)] == [
        True,
        False,
        True,
        False,
        False,  # a padding bit: no item
        False,  # past the bitmap: never read
        False,
    ]
