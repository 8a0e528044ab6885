"""Similar lists ranked from the similar-items index (``app.serving.similarity``), and a
micro-batch's similar lists ranked together (``batcher.rank_similar``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from app.serving.batcher import RankJob, process_batch, rank_batch, rank_exact, rank_similar_exactly
from app.serving.loaded import LoadedModel, build_loaded_model
from app.serving.retrieval import AnnLoader
from app.serving.similarity import CosineScorer, similar_queries, similarity_view
from models_store import ModelStore
from tests.app.conftest import embedded_settings
from training.models import stored_scorer


def _indexed(store_dir: Path, name: str = "mult-vae") -> LoadedModel:
    store = ModelStore(store_dir)
    loaded = build_loaded_model(store.load(name, store.resolve(name)), torch.device("cpu"))
    return AnnLoader(embedded_settings(ann="on", ann_similar_nprobe=10_000))(loaded)


def _exact(store_dir: Path, name: str = "mult-vae") -> LoadedModel:
    store = ModelStore(store_dir)
    return build_loaded_model(store.load(name, store.resolve(name)), torch.device("cpu"))


def _similar_job(item: int, k: int) -> RankJob:
    return RankJob(None, np.array([item]), None, k, similar_to=item)


def _similar(view: LoadedModel, item: int, k: int = 5) -> list[int]:
    job = RankJob(similar_queries(view, [item]), np.array([item]), None, k)
    return [int(i) for i in rank_batch(view, [job])[0].items]


def test_the_cosine_scorer_scores_cosines_without_a_unit_table() -> None:
    vectors = torch.tensor([[3.0, 4.0], [0.0, 2.0], [-1.0, 0.0]])
    scorer = CosineScorer(vectors)
    query = scorer.query(0)
    torch.testing.assert_close(query, torch.tensor([[0.6, 0.8]]))
    torch.testing.assert_close(scorer.score(query), torch.tensor([[1.0, 0.8, -0.6]]))
    torch.testing.assert_close(
        scorer.score(query, torch.tensor([2, 1])), torch.tensor([[-0.6, 0.8]])
    )


def test_the_view_ranks_like_the_exact_cosine_row(trained_store_dir: Path) -> None:
    model = _indexed(trained_store_dir)
    view = similarity_view(model)
    assert view is not None and similarity_view(model) is view  # built once
    assert view.ann is model.similar_ann.retrieval  # type: ignore[union-attr]
    for item in (0, 5, 17):
        exact = model.similar_scores(item)
        exact[item] = -np.inf
        expected = torch.topk(exact, 5).indices.tolist()
        assert _similar(view, item) == expected
        job = RankJob(similar_queries(view, [item]), np.array([item]), None, 5)
        assert rank_exact(view, [job])[0].items.tolist() == expected
    assert similarity_view(dataclasses.replace(model, similar_ann=None)) is None


def test_an_extended_model_is_ranked_with_its_own_vectors(trained_store_dir: Path) -> None:
    # A catalog refresh (ConvMF's text items) gives the model a new scorer whose row 5 has
    # changed; here it becomes row 9's vector, so 9's most similar item must be 5, which
    # the index (built before) cannot know: refreshed rows join every list's candidates.
    model = _indexed(trained_store_dir)
    tensors = {k: v.clone() for k, v in model.scorer.tensors().items()}
    vectors = model.scorer.item_vectors()
    assert vectors is not None
    name = next(
        k for k, v in tensors.items() if v.shape == vectors.shape and torch.equal(v, vectors)
    )
    tensors[name][5] = tensors[name][9]
    scorer = stored_scorer(model.name, model.scorer.config, tensors)
    refreshed = dataclasses.replace(model, scorer=scorer, from_text={5: "stamp"}, _similarity={})
    view = similarity_view(refreshed)
    assert view is not None and view.scorer is not model.similar_ann.scorer  # type: ignore[union-attr]
    assert _similar(view, 9)[0] == 5
    assert _similar(similarity_view(model), 9)[0] != 5  # type: ignore[arg-type]


def test_a_batch_s_similar_lists_are_one_product_and_each_its_own_list(
    trained_store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No index opened: the exact cosine rows. The batch also holds a popularity list,
    # which keeps its place among the answers.
    model = _exact(trained_store_dir)
    assert similarity_view(model) is None
    wanted = [(0, 3), (5, 5), (17, 2)]
    expected = [rank_similar_exactly(model, item, k) for item, k in wanted]
    popular = RankJob(None, np.array([], dtype=np.int64), None, 4)
    expected_popular = rank_batch(model, [popular])[0]
    calls: list[list[int]] = []
    rows = LoadedModel.similar_rows

    def counted(self: LoadedModel, items: list[int]) -> torch.Tensor:
        calls.append(list(items))
        return rows(self, items)

    monkeypatch.setattr(LoadedModel, "similar_rows", counted)
    jobs = [_similar_job(*wanted[0]), popular, _similar_job(*wanted[1]), _similar_job(*wanted[2])]
    ranked = process_batch(model, jobs, None)
    assert calls == [[0, 5, 17]]  # one product for the batch's three lists
    assert [r.items.tolist() for r in ranked] == [
        expected[0].items.tolist(),
        expected_popular.items.tolist(),
        expected[1].items.tolist(),
        expected[2].items.tolist(),
    ]
    for got, want, (item, k) in zip(
        [ranked[0], ranked[2], ranked[3]], expected, wanted, strict=True
    ):
        assert len(got.items) == k and item not in got.items.tolist()
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)


def test_a_batch_s_similar_lists_from_the_index_are_each_its_own_list(
    trained_store_dir: Path,
) -> None:
    model = _indexed(trained_store_dir)
    view = similarity_view(model)
    assert view is not None
    wanted = [(0, 5), (5, 3), (17, 5)]
    ranked = process_batch(model, [_similar_job(item, k) for item, k in wanted], None)
    assert [r.items.tolist() for r in ranked] == [_similar(view, item, k) for item, k in wanted]
    assert {r.retrieval for r in ranked} == {"ann"}  # answered from the index
