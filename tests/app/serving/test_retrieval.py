"""Approximate retrieval on a small synthetic catalog: recall, masks, fallback, metrics.

The catalog is ``ann_catalog``'s (a BPR-MF item table of low effective rank,
the index the store would hold). The exact path (``rank_exact``) is the
reference every figure is checked against.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import torch

from app.core.metrics import Metrics
from app.serving.batcher import RankJob, ScoreBatcher, rank_batch, rank_exact
from app.serving.retrieval import TOO_FEW_CANDIDATES, TOO_MANY_MASKED
from tests.app.serving.ann_catalog import N_ITEMS, NONE, indexed_model, job, user_states


def test_ann_lists_recall_the_exact_top_100() -> None:
    # 76 lists of ~40 items here; 32 probed. (The benchmark measures the default, 16 of
    # about 4 sqrt(I) lists, on catalogs of 100,000 and 1,000,000 items.)
    model = indexed_model(nprobe=32)
    jobs = [job(s) for s in user_states()]
    approximate, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    recall = np.mean(
        [len(set(a.items) & set(e.items)) / 100 for a, e in zip(approximate, exact, strict=True)]
    )
    assert {r.retrieval for r in approximate} == {"ann"}
    assert all(len(r.items) == 100 for r in approximate)
    assert recall >= 0.95, recall


def test_candidates_are_rescored_exactly() -> None:
    model = indexed_model()
    state = user_states(1)[0]
    ranked = rank_batch(model, [job(state, k=20)])[0]
    expected = model.scorer.score(state, torch.as_tensor(ranked.items))[0].numpy()
    np.testing.assert_allclose(ranked.scores, expected, rtol=1e-6)
    assert list(ranked.scores) == sorted(ranked.scores, reverse=True)


def test_masks_are_applied_after_retrieval() -> None:
    model = indexed_model(nprobe=32)
    state = user_states(1)[0]
    best = rank_exact(model, [job(state, k=50)])[0].items
    banned = best[:30]  # the 30 best items: a seen history that would empty a short list
    ranked = rank_batch(model, [job(state, k=50, banned=banned)])[0]
    assert ranked.retrieval == "ann" and len(ranked.items) == 50
    assert not set(ranked.items) & set(banned)
    reference = rank_exact(model, [job(state, k=50, banned=banned)])[0].items
    assert len(set(ranked.items) & set(reference)) >= 45  # the next best are still found

    allowed = np.sort(np.random.default_rng(2).choice(N_ITEMS, 40, replace=False))
    included = rank_batch(model, [job(state, k=10, banned=allowed[:5], allowed=allowed)])[0]
    reference = rank_exact(model, [job(state, k=10, banned=allowed[:5], allowed=allowed)])[0]
    assert set(included.items) <= set(allowed[5:])
    assert included.items.tolist() == reference.items.tolist()


def test_too_few_candidates_fall_back_to_exact_scoring() -> None:
    # One list of about 40 items searched: 150 candidates cannot be found, so the job is
    # ranked exactly and says so; a job that fits keeps the index.
    model = indexed_model(candidates=20, nprobe=1)
    state, other = user_states(2)
    jobs = [job(state, k=150), job(other, k=5)]
    ranked = rank_batch(model, jobs)
    assert ranked[0].retrieval == TOO_FEW_CANDIDATES
    assert ranked[0].items.tolist() == rank_exact(model, jobs[:1])[0].items.tolist()
    assert ranked[1].retrieval == "ann"


def test_too_many_masked_items_fall_back_to_exact_scoring() -> None:
    model = indexed_model(max_candidates=500)
    state = user_states(1)[0]
    banned = np.arange(600)
    ranked = rank_batch(model, [job(state, k=10, banned=banned)])[0]
    assert ranked.retrieval == TOO_MANY_MASKED
    assert (
        ranked.items.tolist()
        == rank_exact(model, [job(state, k=10, banned=banned)])[0].items.tolist()
    )


def test_popularity_rows_stay_exact() -> None:
    model = indexed_model()
    ranked = rank_batch(model, [job(None, k=3)])[0]
    assert ranked.retrieval == "exact"
    assert ranked.items.tolist() == [N_ITEMS - 1, N_ITEMS - 2, N_ITEMS - 3]


def test_catalog_items_the_index_lacks_are_always_candidates() -> None:
    model = indexed_model()
    state = user_states(1)[0]
    worst = int(rank_exact(model, [job(state, k=N_ITEMS)])[0].items[-1])
    with torch.no_grad():  # make the worst item the best, as a refreshed text row could
        model.scorer.t["item_bias"][worst] = 1e6
    model.from_text = {worst: "stamp"}
    assert rank_batch(model, [job(state, k=5)])[0].items[0] == worst


def test_the_batcher_counts_index_answers_and_fallbacks() -> None:
    model = indexed_model(candidates=20, nprobe=1)
    metrics = Metrics()
    states = user_states(3)

    async def scenario() -> None:
        batcher = ScoreBatcher(model, metrics, max_batch=8, wait_s=0.01)  # type: ignore[arg-type]
        await asyncio.gather(
            batcher.rank(job(states[0], k=150)),
            batcher.rank(job(states[1], k=5)),
            batcher.rank(job(states[2], k=5)),
        )
        await batcher.close()

    asyncio.run(scenario())
    sample = metrics.registry.get_sample_value
    assert sample("genrec_ann_rows_total", {"model": "bpr-mf"}) == 2
    assert (
        sample("genrec_ann_fallback_total", {"model": "bpr-mf", "reason": TOO_FEW_CANDIDATES}) == 1
    )


@pytest.mark.parametrize("k", [1, 10])
def test_no_index_means_the_exact_path(k: int) -> None:
    model = indexed_model()
    jobs = [job(s, k=k) for s in user_states(5)]
    model.ann = None
    assert [r.retrieval for r in rank_batch(model, jobs)] == ["exact"] * 5


def test_an_attribute_filter_masks_index_candidates() -> None:
    from app.rules.compile import RulePlan

    model = indexed_model()
    keep = torch.zeros(N_ITEMS, dtype=torch.bool)
    keep[::2] = True  # the filter keeps even item indices only
    plan = RulePlan(keep=keep, drop=~keep, offset=None)
    jobs = [RankJob(state=s, banned=NONE, allowed=None, k=20, rules=plan) for s in user_states(8)]
    ranked = rank_batch(model, jobs)
    assert {r.retrieval for r in ranked} == {"ann"}
    for r in ranked:
        assert len(r.items) == 20 and (r.items % 2 == 0).all()


def _cap(limit: int, values: int = 5) -> Any:
    """A cap of ``limit`` items per value of an attribute that gives item i value i % values."""
    import scipy.sparse as sp

    from app.rules.compile import Cap

    kinds = np.arange(N_ITEMS) % values
    membership = sp.csr_matrix(
        (np.ones(N_ITEMS), (np.arange(N_ITEMS), kinds)), shape=(N_ITEMS, values)
    )
    return Cap("kind", limit, membership)


def _with_similarity(model: Any) -> Any:
    """The stand-in model with ``LoadedModel``'s similarity (MMR's cosine over item vectors)."""
    from types import MethodType

    import scipy.sparse as sp

    from app.serving.loaded import LoadedModel

    model._similarity = {}
    model.similar_ann = None
    model.history = sp.csr_matrix((1, N_ITEMS), dtype=np.float32)
    for method in ("_similarity_source", "similar_scores", "pool_similarity"):
        setattr(model, method, MethodType(getattr(LoadedModel, method), model))
    return model


@pytest.mark.parametrize("rules", ["cap", "mmr", "cap+mmr+boost"])
def test_a_diversity_rule_reranks_index_candidates(rules: str) -> None:
    # With every list probed the candidates' first pool is the exact path's, so the
    # re-ranked list is the exact path's list item for item.
    from app.rules.compile import RulePlan

    model = _with_similarity(indexed_model())
    model.ann.index.nprobe = model.ann.index.nlist
    offset = None
    if "boost" in rules:
        offset = torch.as_tensor(
            np.where(np.arange(N_ITEMS) % 3 == 0, 1.0, 0.0), dtype=torch.float32
        )
    plan = RulePlan(
        keep=None,
        drop=None,
        offset=offset,
        cap=_cap(2) if "cap" in rules else None,
        mmr=0.5 if "mmr" in rules else None,
    )
    jobs = [RankJob(state=s, banned=NONE, allowed=None, k=8, rules=plan) for s in user_states(6)]
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {"ann"}
    for r, e in zip(ranked, exact, strict=True):
        assert r.items.tolist() == e.items.tolist()
        np.testing.assert_allclose(r.scores, e.scores, rtol=1e-5, atol=1e-5)
        if "cap" in rules:
            assert max(np.bincount(r.items % 5, minlength=5)) <= 2


def test_a_cap_the_first_pool_cannot_fill_falls_back_to_exact_scoring() -> None:
    # One item per value of five values: a list of 8 cannot be filled from any pool; the
    # exact path grows its pool over the whole catalog before it returns the 5 it can.
    from app.rules.compile import RulePlan

    model = indexed_model()
    plan = RulePlan(keep=None, drop=None, offset=None, cap=_cap(1))
    jobs = [RankJob(state=s, banned=NONE, allowed=None, k=8, rules=plan) for s in user_states(3)]
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {TOO_FEW_CANDIDATES}
    assert [r.items.tolist() for r in ranked] == [e.items.tolist() for e in exact]
    assert all(len(r.items) == 5 for r in ranked)


def test_a_cap_on_an_include_list_grows_its_pool_within_the_list() -> None:
    # Five common values and ten rare ones, one item each, among 900 included items: a
    # list of 12 at one item per value needs the rare items, most of them beyond the
    # first pool (240), so the pool must grow within the include list, as exactly.
    import scipy.sparse as sp

    from app.rules.compile import Cap, RulePlan

    model = indexed_model()
    allowed = np.sort(np.random.default_rng(5).choice(N_ITEMS, 900, replace=False))
    kinds = np.arange(N_ITEMS) % 5
    kinds[allowed[::90]] = np.arange(5, 15)  # ten rare values
    membership = sp.csr_matrix((np.ones(N_ITEMS), (np.arange(N_ITEMS), kinds)), shape=(N_ITEMS, 15))
    plan = RulePlan(keep=None, drop=None, offset=None, cap=Cap("kind", 1, membership))
    jobs = [RankJob(s, NONE, allowed, 12, rules=plan) for s in user_states(3)]
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    for r, e in zip(ranked, exact, strict=True):
        assert r.retrieval == "exact" and r.items.tolist() == e.items.tolist()
        assert len(r.items) == 12 and len(set(kinds[r.items])) == 12


def test_a_cap_on_a_long_include_list_is_not_grown_within_index_candidates() -> None:
    # An include list longer than GENREC_ANN_MAX_CANDIDATES is searched like any list: its
    # candidates are not every item it may hold, so a cap their first pool cannot fill
    # goes to the exact path instead of growing within them.
    import scipy.sparse as sp

    from app.rules.compile import Cap, RulePlan

    model = indexed_model(candidates=400, max_candidates=500)
    model.ann.index.nprobe = model.ann.index.nlist
    allowed = np.sort(np.random.default_rng(6).choice(N_ITEMS, 2_900, replace=False))
    kinds = np.arange(N_ITEMS) % 5
    kinds[allowed[::290]] = np.arange(5, 15)  # ten rare values among the included items
    membership = sp.csr_matrix((np.ones(N_ITEMS), (np.arange(N_ITEMS), kinds)), shape=(N_ITEMS, 15))
    plan = RulePlan(keep=None, drop=None, offset=None, cap=Cap("kind", 1, membership))
    jobs = [RankJob(s, NONE, allowed, 12, rules=plan) for s in user_states(3)]
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {TOO_FEW_CANDIDATES}
    assert [r.items.tolist() for r in ranked] == [e.items.tolist() for e in exact]
