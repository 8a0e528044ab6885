"""Approximate retrieval on a small synthetic catalog: recall, masks, fallback, metrics.

The catalog is a BPR-MF item table (3,000 items x 16 factors + bias) of low
effective rank, scored through the real scorer; the index is the one the
store would hold (``training.ann``). The exact path (``rank_exact``) is the
reference every figure is checked against.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from app.core.metrics import Metrics
from app.serving.batcher import RankJob, ScoreBatcher, rank_batch, rank_exact
from app.serving.retrieval import TOO_FEW_CANDIDATES, TOO_MANY_MASKED, AnnRetrieval
from training.ann import build_index, item_table
from training.models.bpr import BPRScorer

N_ITEMS, DIMS, RANK, N_USERS = 3_000, 16, 4, 60
NONE = np.zeros(0, dtype=np.int64)


def _scorer() -> BPRScorer:
    """Item factors of low effective rank (a few strong directions plus noise), as trained
    tables have; independent random values would be a catalog no index can shortcut."""
    rng = np.random.default_rng(0)
    strong = rng.standard_normal((N_ITEMS, RANK)) @ rng.standard_normal((RANK, DIMS))
    factors = strong + 0.3 * rng.standard_normal((N_ITEMS, DIMS))
    tensors = {
        "user_factors": torch.zeros(1, DIMS),
        "item_factors": torch.as_tensor(factors, dtype=torch.float32),
        "item_bias": torch.as_tensor(rng.standard_normal(N_ITEMS, dtype=np.float32) * 0.5),
    }
    return BPRScorer({"n_items": N_ITEMS, "fold_in_reg": 0.1, "fold_in_steps": 1}, tensors)


def _model(
    candidates: int = 200, max_candidates: int = 10_000, nprobe: int | None = None
) -> SimpleNamespace:
    scorer = _scorer()
    index, params = build_index(item_table(scorer), nprobe=nprobe)
    return SimpleNamespace(
        name="bpr-mf",
        version="1",
        device=torch.device("cpu"),
        n_items=N_ITEMS,
        popularity=np.arange(N_ITEMS, dtype=np.float32),
        scorer=scorer,
        from_text={},
        ann=AnnRetrieval(index, params, candidates, max_candidates),
    )


def _states(n: int = N_USERS, seed: int = 1) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.as_tensor(rng.standard_normal((1, DIMS), dtype=np.float32)) for _ in range(n)]


def _job(
    state: torch.Tensor | None, k: int = 100, banned: Any = NONE, allowed: Any = None
) -> RankJob:
    return RankJob(state=state, banned=np.asarray(banned, dtype=np.int64), allowed=allowed, k=k)


def test_ann_lists_recall_the_exact_top_100() -> None:
    # 76 lists of ~40 items here; 32 probed. (The benchmark measures the default, 16 of
    # about 4 sqrt(I) lists, on catalogs of 100,000 and 1,000,000 items.)
    model = _model(nprobe=32)
    jobs = [_job(s) for s in _states()]
    approximate, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    recall = np.mean(
        [len(set(a.items) & set(e.items)) / 100 for a, e in zip(approximate, exact, strict=True)]
    )
    assert {r.retrieval for r in approximate} == {"ann"}
    assert all(len(r.items) == 100 for r in approximate)
    assert recall >= 0.95, recall


def test_candidates_are_rescored_exactly() -> None:
    model = _model()
    state = _states(1)[0]
    ranked = rank_batch(model, [_job(state, k=20)])[0]
    expected = model.scorer.score(state, torch.as_tensor(ranked.items))[0].numpy()
    np.testing.assert_allclose(ranked.scores, expected, rtol=1e-6)
    assert list(ranked.scores) == sorted(ranked.scores, reverse=True)


def test_masks_are_applied_after_retrieval() -> None:
    model = _model(nprobe=32)
    state = _states(1)[0]
    best = rank_exact(model, [_job(state, k=50)])[0].items
    banned = best[:30]  # the 30 best items: a seen history that would empty a short list
    ranked = rank_batch(model, [_job(state, k=50, banned=banned)])[0]
    assert ranked.retrieval == "ann" and len(ranked.items) == 50
    assert not set(ranked.items) & set(banned)
    reference = rank_exact(model, [_job(state, k=50, banned=banned)])[0].items
    assert len(set(ranked.items) & set(reference)) >= 45  # the next best are still found

    allowed = np.sort(np.random.default_rng(2).choice(N_ITEMS, 40, replace=False))
    included = rank_batch(model, [_job(state, k=10, banned=allowed[:5], allowed=allowed)])[0]
    reference = rank_exact(model, [_job(state, k=10, banned=allowed[:5], allowed=allowed)])[0]
    assert set(included.items) <= set(allowed[5:])
    assert included.items.tolist() == reference.items.tolist()


def test_too_few_candidates_fall_back_to_exact_scoring() -> None:
    # One list of about 40 items searched: 150 candidates cannot be found, so the job is
    # ranked exactly and says so; a job that fits keeps the index.
    model = _model(candidates=20, nprobe=1)
    state, other = _states(2)
    jobs = [_job(state, k=150), _job(other, k=5)]
    ranked = rank_batch(model, jobs)
    assert ranked[0].retrieval == TOO_FEW_CANDIDATES
    assert ranked[0].items.tolist() == rank_exact(model, jobs[:1])[0].items.tolist()
    assert ranked[1].retrieval == "ann"


def test_too_many_masked_items_fall_back_to_exact_scoring() -> None:
    model = _model(max_candidates=500)
    state = _states(1)[0]
    banned = np.arange(600)
    ranked = rank_batch(model, [_job(state, k=10, banned=banned)])[0]
    assert ranked.retrieval == TOO_MANY_MASKED
    assert (
        ranked.items.tolist()
        == rank_exact(model, [_job(state, k=10, banned=banned)])[0].items.tolist()
    )


def test_popularity_rows_stay_exact() -> None:
    model = _model()
    ranked = rank_batch(model, [_job(None, k=3)])[0]
    assert ranked.retrieval == "exact"
    assert ranked.items.tolist() == [N_ITEMS - 1, N_ITEMS - 2, N_ITEMS - 3]


def test_catalog_items_the_index_lacks_are_always_candidates() -> None:
    model = _model()
    state = _states(1)[0]
    worst = int(rank_exact(model, [_job(state, k=N_ITEMS)])[0].items[-1])
    with torch.no_grad():  # make the worst item the best, as a refreshed text row could
        model.scorer.t["item_bias"][worst] = 1e6
    model.from_text = {worst: "stamp"}
    assert rank_batch(model, [_job(state, k=5)])[0].items[0] == worst


def test_the_batcher_counts_index_answers_and_fallbacks() -> None:
    model = _model(candidates=20, nprobe=1)
    metrics = Metrics()
    states = _states(3)

    async def scenario() -> None:
        batcher = ScoreBatcher(model, metrics, max_batch=8, wait_s=0.01)  # type: ignore[arg-type]
        await asyncio.gather(
            batcher.rank(_job(states[0], k=150)),
            batcher.rank(_job(states[1], k=5)),
            batcher.rank(_job(states[2], k=5)),
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
    model = _model()
    jobs = [_job(s, k=k) for s in _states(5)]
    model.ann = None
    assert [r.retrieval for r in rank_batch(model, jobs)] == ["exact"] * 5


def test_an_attribute_filter_masks_index_candidates() -> None:
    from app.rules.compile import RulePlan

    model = _model()
    keep = torch.zeros(N_ITEMS, dtype=torch.bool)
    keep[::2] = True  # the filter keeps even item indices only
    plan = RulePlan(keep=keep, drop=~keep, offset=None)
    jobs = [RankJob(state=s, banned=NONE, allowed=None, k=20, rules=plan) for s in _states(8)]
    ranked = rank_batch(model, jobs)
    assert {r.retrieval for r in ranked} == {"ann"}
    for r in ranked:
        assert len(r.items) == 20 and (r.items % 2 == 0).all()


def test_boosts_and_diversity_rank_exactly_on_an_indexed_model() -> None:
    from app.rules.compile import RulePlan
    from app.serving.retrieval import RULES

    model = _model()
    offset = torch.zeros(N_ITEMS)
    offset[:10] = 3.0
    plan = RulePlan(keep=None, drop=None, offset=offset)
    jobs = [RankJob(state=s, banned=NONE, allowed=None, k=20, rules=plan) for s in _states(4)]
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {RULES}
    for r, e in zip(ranked, exact, strict=True):
        assert list(r.items) == list(e.items)
