"""Boosted lists from the index (``app.serving.ann_rules``) against the exact path.

With every IVF list probed the index search is exhaustive, so a boosted list
from the index must be the exact path's list, item for item, with the same
boosted scores and boost unit: that checks the spread from the covariance and
the search per offset group together. With the default probes it is the same
list up to the index's recall.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.rules.apply import boost_unit
from app.rules.compile import RulePlan
from app.serving import ann_rules
from app.serving.ann_rules import MAX_GROUPS, ScoreSpread, offset_groups
from app.serving.batcher import RankJob, rank_batch, rank_exact
from app.serving.retrieval import RULES, TOO_FEW_CANDIDATES
from tests.app.serving.ann_catalog import N_ITEMS, NONE, indexed_model, user_states
from training.models.base import InnerProductScorer

ITEMS = np.arange(N_ITEMS)


def _plan(offset: np.ndarray, keep: np.ndarray | None = None) -> RulePlan:
    keep_t = None if keep is None else torch.as_tensor(keep)
    return RulePlan(
        keep=keep_t,
        drop=None if keep_t is None else ~keep_t,
        offset=torch.as_tensor(offset, dtype=torch.float32),
    )


def _exhaustive(candidates: int = 200) -> object:
    # Groups above 500 items are searched, not taken whole (the catalog holds 3,000).
    model = indexed_model(candidates=candidates, max_candidates=500)
    model.ann.index.nprobe = model.ann.index.nlist  # every list: an exact search
    return model


def _jobs(plan: RulePlan, k: int = 20, n: int = 12, banned: np.ndarray = NONE) -> list[RankJob]:
    return [RankJob(state=s, banned=banned, allowed=None, k=k, rules=plan) for s in user_states(n)]


def _offsets() -> dict[str, np.ndarray]:
    """Boost plans whose groups are taken whole, searched, or both; up and down."""
    small = np.zeros(N_ITEMS, np.float32)
    small[:10] = 3.0  # ten promoted items: a group smaller than the fetch, taken whole
    third = np.where(ITEMS % 3 == 0, 2.0, 0.0).astype(np.float32)  # a third of the catalog
    demoted = np.where(ITEMS % 2 == 0, -2.0, 0.0).astype(np.float32)  # half, pushed down
    two_rules = third + np.where(ITEMS < 1_000, 1.0, 0.0).astype(np.float32)  # four groups
    return {"small": small, "third": third, "demoted": demoted, "two_rules": two_rules}


@pytest.mark.parametrize("name", sorted(_offsets()))
def test_an_exhaustive_search_gives_the_exact_boosted_list(name: str) -> None:
    # A fetch of 20 for lists of 20: only a search per group finds what a boost lifts.
    model = _exhaustive(candidates=20)
    jobs = _jobs(_plan(_offsets()[name]))
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {"ann"}
    for r, e in zip(ranked, exact, strict=True):
        assert r.items.tolist() == e.items.tolist()
        np.testing.assert_allclose(r.scores, e.scores, rtol=1e-5, atol=1e-5)
        assert r.boost_unit == pytest.approx(e.boost_unit, rel=1e-5)


def test_boosts_compose_with_a_filter_and_seen_items() -> None:
    model = _exhaustive()
    keep = ITEMS % 4 != 1  # the filter drops a quarter of the items
    banned = np.arange(0, 300, 7)  # seen items, in every group
    jobs = _jobs(_plan(_offsets()["two_rules"], keep), banned=banned)
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {"ann"}
    for r, e in zip(ranked, exact, strict=True):
        assert r.items.tolist() == e.items.tolist()
        assert keep[r.items].all() and not set(r.items) & set(banned)


def test_an_include_list_is_boosted_like_the_exact_path() -> None:
    model = indexed_model()
    allowed = np.sort(np.random.default_rng(3).choice(N_ITEMS, 60, replace=False))
    plan = _plan(_offsets()["third"])
    jobs = [RankJob(s, NONE, allowed, 10, rules=plan) for s in user_states(4)]
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    for r, e in zip(ranked, exact, strict=True):
        assert r.retrieval == "exact" and r.items.tolist() == e.items.tolist()
        assert r.boost_unit == pytest.approx(e.boost_unit, rel=1e-5)


def test_with_the_default_probes_boosted_lists_recall_the_exact_ones() -> None:
    # of 76 lists, as test_retrieval's recall test; groups above 500 items searched
    model = indexed_model(nprobe=32, max_candidates=500)
    jobs = _jobs(_plan(_offsets()["two_rules"]), k=100, n=40)
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {"ann"}
    recall = np.mean(
        [len(set(r.items) & set(e.items)) / 100 for r, e in zip(ranked, exact, strict=True)]
    )
    assert recall >= 0.95, recall


def test_the_spread_from_the_covariance_is_the_spread_of_the_whole_row() -> None:
    model = indexed_model()
    spread = ScoreSpread()
    states = torch.cat(user_states(16))
    from_table = spread.of(model.scorer, model.scorer.inner_product_queries(states))
    rows = model.scorer.score(states)
    from_rows = [boost_unit(row, _plan(_offsets()["small"])) for row in rows]
    np.testing.assert_allclose(from_table.numpy(), from_rows, rtol=1e-5)


def test_offset_groups_partition_the_catalog() -> None:
    # Four groups (334, 666, 666 and 1,334 items): the smallest taken whole, the rest searched.
    groups = offset_groups(_plan(_offsets()["two_rules"]), whole_up_to=500)
    assert groups is not None
    assert sorted(g.offset for g in groups) == [0.0, 1.0, 2.0, 3.0]
    members = []
    for g in groups:
        if g.whole:
            assert g.items is not None and g.selector is None and g.bitmap is None
            in_group = g.items
        else:
            assert g.items is None and g.selector is not None and g.bitmap is not None
            in_group = np.flatnonzero(np.unpackbits(g.bitmap, bitorder="little")[:N_ITEMS])
            assert all(g.selector.is_member(int(i)) for i in in_group[:50])
            outside = np.setdiff1d(ITEMS, in_group)[:50]
            assert not any(g.selector.is_member(int(i)) for i in outside)
        assert g.size == in_group.size
        members.append(in_group)
    assert sorted((g.size, g.whole) for g in groups) == [
        (334, True),
        (666, False),
        (666, False),
        (1334, False),
    ]
    assert np.array_equal(np.sort(np.concatenate(members)), ITEMS)


def test_a_searched_group_holds_its_bitmap_alone() -> None:
    # A boost over a third of a catalog: two searched groups, one bit an item each (at a
    # million items 125 KB a group, where an item list beside it held 8 MB a plan).
    groups = offset_groups(_plan(_offsets()["third"]), whole_up_to=500)
    assert groups is not None and not any(g.whole for g in groups)
    assert sum(g.nbytes for g in groups) == 2 * -(-N_ITEMS // 8)
    # FAISS takes the bitmap's length in bytes and reads no byte past it: an id beyond
    # the catalog is no member (given the item count, it read past the bitmap).
    selector = groups[0].selector
    assert selector is not None and selector.n == -(-N_ITEMS // 8)
    assert not selector.is_member(8 * N_ITEMS - 1)


def test_a_plan_with_too_many_offsets_ranks_exactly() -> None:
    model = indexed_model()
    offset = (ITEMS % (MAX_GROUPS + 1)).astype(np.float32) / 10  # MAX_GROUPS + 1 values
    jobs = _jobs(_plan(offset), n=3)
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {RULES}
    assert [r.items.tolist() for r in ranked] == [e.items.tolist() for e in exact]


def test_a_searched_group_that_finds_too_few_falls_back() -> None:
    # One of 76 lists probed: a search restricted to two thirds of the catalog finds a few
    # dozen of its items, not the 150 the list needs, so it is ranked exactly.
    model = indexed_model(candidates=20, max_candidates=500, nprobe=1)
    offset = np.where(ITEMS % 3 == 0, 0.0, 1.0).astype(np.float32)
    jobs = _jobs(_plan(offset), k=150, n=3)
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {TOO_FEW_CANDIDATES}
    assert [r.items.tolist() for r in ranked] == [e.items.tolist() for e in exact]


@pytest.mark.parametrize("kept", [300, 1_200])
def test_a_narrow_filter_is_searched_within_the_items_it_keeps(kept: int) -> None:
    # A filter keeping 300 items (taken whole) or 1,200 (searched, restricted to them):
    # searched like an unfiltered list and then masked, a fetch of 20 would keep a
    # handful; restricted, the list is the exact one.
    model = _exhaustive(candidates=20)
    keep = np.zeros(N_ITEMS, dtype=bool)
    keep[np.random.default_rng(7).choice(N_ITEMS, kept, replace=False)] = True
    plan = RulePlan(keep=torch.as_tensor(keep), drop=torch.as_tensor(~keep), offset=None)
    jobs = _jobs(plan, k=20)
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {"ann"}
    assert [r.items.tolist() for r in ranked] == [e.items.tolist() for e in exact]
    assert all(keep[r.items].all() for r in ranked)


def test_a_filter_that_keeps_nothing_gives_an_empty_list() -> None:
    model = indexed_model()
    nothing = torch.zeros(N_ITEMS, dtype=torch.bool)
    plan = RulePlan(keep=nothing, drop=~nothing, offset=None)
    ranked = rank_batch(model, _jobs(plan, n=2))
    assert [r.items.tolist() for r in ranked] == [[], []]
    assert {r.retrieval for r in ranked} == {"ann"}


def test_a_rare_group_is_searched_with_more_probes() -> None:
    # 600 promoted items (a fifth of the catalog) lifted far above the rest: the list is
    # theirs. Probing 2 of 76 lists would look at about 16 of them; a fifth of the
    # catalog gets five times the probes, so the promoted list is still found.
    model = indexed_model(nprobe=2, max_candidates=500)
    promoted = np.zeros(N_ITEMS, np.float32)
    promoted[np.random.default_rng(4).choice(N_ITEMS, 600, replace=False)] = 10.0
    assert model.ann._group_nprobe(600) == 10
    jobs = _jobs(_plan(promoted), k=10, n=30)
    ranked, exact = rank_batch(model, jobs), rank_exact(model, jobs)
    assert {r.retrieval for r in ranked} == {"ann"}
    assert all(promoted[r.items].min() == 10.0 for r in ranked)
    recall = np.mean(
        [len(set(r.items) & set(e.items)) / 10 for r, e in zip(ranked, exact, strict=True)]
    )
    assert recall >= 0.8, recall


def test_offset_groups_live_as_long_as_their_plan() -> None:
    import gc

    from app.serving.ann_rules import OffsetGroups

    cache = OffsetGroups(whole_up_to=500)
    plan = _plan(_offsets()["third"])
    first = cache.of(plan)
    assert cache.of(plan) is first and len(cache) == 1  # computed once per plan
    del plan
    gc.collect()
    assert len(cache) == 0  # the rule compiler's cache decides how long a plan lives


def test_the_covariance_in_chunks_is_the_covariance_of_the_whole_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ann_rules, "CHUNK_ROWS", 7)  # many chunks, the last one short
    scorer = indexed_model().scorer
    assert isinstance(scorer, InnerProductScorer)
    table = scorer.inner_product_table().double()
    centred = table - table.mean(dim=0)
    whole = centred.T @ centred / table.shape[0]
    torch.testing.assert_close(ann_rules.table_covariance(scorer), whole, rtol=1e-4, atol=1e-6)
