"""``training.ann``: the index files a version carries (the retrieval index and the
similar-items index over unit-length item vectors) and what the manifest records."""

from __future__ import annotations

import faiss
import numpy as np
import torch

from tests.app.serving.ann_catalog import N_ITEMS, catalog_scorer
from training.ann import (
    INDEX_FILE,
    SIMILAR_FILE,
    build_for_scorer,
    default_similar_nprobe,
    unit_rows,
)
from training.models.ease import EASEScorer


def test_unit_rows_have_unit_length_and_a_zero_row_stays_zero() -> None:
    rows = np.array([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]], dtype=np.float64)
    unit = unit_rows(rows)
    assert unit.dtype == np.float32 and unit.flags.c_contiguous
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])
    assert rows[0, 0] == 3.0  # the input is not changed


def test_an_inner_product_scorer_gets_both_indexes() -> None:
    scorer = catalog_scorer()
    built = build_for_scorer(scorer, nprobe=None)
    assert built is not None
    files, retrieval = built
    assert set(files) == {INDEX_FILE, SIMILAR_FILE}
    assert retrieval["file"] == INDEX_FILE and retrieval["similar"]["file"] == SIMILAR_FILE
    vectors = scorer.item_vectors().numpy()
    assert retrieval["similar"]["dims"] == vectors.shape[1]
    assert retrieval["dims"] == scorer.inner_product_table().shape[1]
    assert retrieval["similar"]["n_items"] == N_ITEMS
    nlist = retrieval["similar"]["nlist"]
    assert retrieval["similar"]["nprobe"] == default_similar_nprobe(nlist) == max(16, nlist // 4)
    assert retrieval["nprobe"] == 16  # the retrieval index's default: far fewer lists

    # With every list probed the similar-items index ranks by exact cosine.
    index = faiss.deserialize_index(np.frombuffer(files[SIMILAR_FILE], dtype=np.uint8))
    faiss.extract_index_ivf(index).nprobe = faiss.extract_index_ivf(index).nlist
    unit = unit_rows(vectors)
    queries = unit[[0, 7, 99]]
    distances, labels = index.search(queries, 20)
    exact = np.argsort(-(queries @ unit.T), axis=1, kind="stable")[:, :20]
    assert (labels == exact).mean() > 0.95  # ties aside
    assert labels[:, 0].tolist() == [0, 7, 99]  # an item is its own nearest
    np.testing.assert_allclose(distances[:, 0], 1.0, rtol=1e-5)


def test_a_scorer_not_of_inner_product_form_gets_none() -> None:
    scorer = EASEScorer({"n_items": 3}, {"b": torch.zeros(3, 3)})
    assert build_for_scorer(scorer) is None
