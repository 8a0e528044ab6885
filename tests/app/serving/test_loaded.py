"""``LoadedModel``'s similarity: the pool form MMR uses equals the whole row's, and a
batch's rows (one product) are each item's cosine row."""

from __future__ import annotations

from types import MethodType, SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from app.serving import loaded
from app.serving.loaded import LoadedModel
from tests.app.serving.ann_catalog import N_ITEMS, catalog_scorer


def _model(scorer: object, history: sp.csr_matrix) -> SimpleNamespace:
    model = SimpleNamespace(scorer=scorer, history=history, similar_ann=None, _similarity={})
    model._similarity_source = MethodType(LoadedModel._similarity_source, model)
    model.similar_rows = MethodType(LoadedModel.similar_rows, model)
    return model


def _check(model: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row of the pool's cosines, computed at once or a row at a time, is the
    whole row's cosines at the pool (MMR's similarity is the similar list's)."""
    pool = np.random.default_rng(0).choice(N_ITEMS, 300, replace=False)
    for full_pool in (4096, 100):  # all at once; a row at a time (a pool above the limit)
        monkeypatch.setattr(loaded, "FULL_POOL", full_pool)
        among = LoadedModel.pool_similarity(model, pool)  # type: ignore[arg-type]
        assert (among.all is not None) == (full_pool >= pool.size)
        for position in (0, 17, 5):
            whole = LoadedModel.similar_scores(model, int(pool[position]))  # type: ignore[arg-type]
            torch.testing.assert_close(
                torch.as_tensor(among.row(position)), whole[torch.as_tensor(pool)]
            )


def test_pool_similarity_over_item_vectors_is_the_row_at_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _check(_model(catalog_scorer(), sp.csr_matrix((1, N_ITEMS), dtype=np.float32)), monkeypatch)


def test_pool_similarity_over_cooccurrence_columns_is_the_row_at_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(1)
    history = sp.random(200, N_ITEMS, density=0.02, format="csr", random_state=rng)
    history.data[:] = 1.0
    _check(_model(SimpleNamespace(item_vectors=lambda: None), history), monkeypatch)


def test_similarity_over_item_vectors_holds_no_unit_length_copy() -> None:
    # At a million items a unit-length table would be a second copy of the item table
    # (1 GB at 256 dimensions); the cosine divides by 4 bytes of norm per item instead.
    scorer = catalog_scorer()
    model = _model(scorer, sp.csr_matrix((1, N_ITEMS), dtype=np.float32))
    whole = LoadedModel.similar_scores(model, 3)  # type: ignore[arg-type]
    vectors = scorer.item_vectors()
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    torch.testing.assert_close(whole, unit @ unit[3])
    held = [t for t in model._similarity["index"].t.values()]
    assert all(t.data_ptr() == vectors.data_ptr() for t in held)  # the model's own table


def _cosines(vectors: np.ndarray, item: int) -> np.ndarray:
    norms = np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)
    return (vectors @ vectors[item]) / (norms * norms[item])


def test_a_batch_s_rows_over_item_vectors_are_each_item_s_cosines() -> None:
    scorer = catalog_scorer()
    model = _model(scorer, sp.csr_matrix((1, N_ITEMS), dtype=np.float32))
    items = [3, 0, 3, N_ITEMS - 1]  # repeats too: a batch may ask for one item twice
    rows = LoadedModel.similar_rows(model, items)  # type: ignore[arg-type]
    assert rows.shape == (len(items), N_ITEMS)
    vectors = scorer.item_vectors().double().numpy()
    for b, item in enumerate(items):
        np.testing.assert_allclose(rows[b].numpy(), _cosines(vectors, item), atol=1e-5)


def test_a_batch_s_rows_over_cooccurrence_are_each_item_s_cosines() -> None:
    rng = np.random.default_rng(2)
    history = sp.random(200, N_ITEMS, density=0.02, format="csr", random_state=rng)
    history.data[:] = 1.0
    model = _model(SimpleNamespace(item_vectors=lambda: None), history)
    items = [5, 1, 40]
    rows = LoadedModel.similar_rows(model, items)  # type: ignore[arg-type]
    columns = history.T.toarray()  # (I, U): an item's column of the training matrix
    for b, item in enumerate(items):
        np.testing.assert_allclose(rows[b].numpy(), _cosines(columns, item), atol=1e-6)
