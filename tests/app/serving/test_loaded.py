"""``LoadedModel``'s similarity: the pool-only form MMR uses equals the whole row's."""

from __future__ import annotations

from types import MethodType, SimpleNamespace

import numpy as np
import scipy.sparse as sp
import torch

from app.serving.loaded import LoadedModel
from tests.app.serving.ann_catalog import N_ITEMS, catalog_scorer


def _model(scorer: object, history: sp.csr_matrix) -> SimpleNamespace:
    model = SimpleNamespace(scorer=scorer, history=history, similar_ann=None, _similarity={})
    model._similarity_source = MethodType(LoadedModel._similarity_source, model)
    return model


def _check(model: SimpleNamespace) -> None:
    pool = np.sort(np.random.default_rng(0).choice(N_ITEMS, 300, replace=False))
    for item in (0, 17, int(pool[5])):
        whole = LoadedModel.similar_scores(model, item)  # type: ignore[arg-type]
        among = LoadedModel.similar_among(model, item, pool)  # type: ignore[arg-type]
        torch.testing.assert_close(among, whole[torch.as_tensor(pool)])


def test_similar_among_item_vectors_is_the_row_at_the_pool() -> None:
    _check(_model(catalog_scorer(), sp.csr_matrix((1, N_ITEMS), dtype=np.float32)))


def test_similar_among_cooccurrence_columns_is_the_row_at_the_pool() -> None:
    rng = np.random.default_rng(1)
    history = sp.random(200, N_ITEMS, density=0.02, format="csr", random_state=rng)
    history.data[:] = 1.0
    _check(_model(SimpleNamespace(item_vectors=lambda: None), history))


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
