"""``training.ann``: the index files a version carries (the retrieval index and the
similar-items index over unit-length item vectors) and what the manifest records."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from tests.app.serving.ann_catalog import N_ITEMS, catalog_scorer
from training import ann
from training.ann import (
    INDEX_FILE,
    SIMILAR_FILE,
    build_for_scorer,
    build_index,
    calibrate_nprobe,
    exact_neighbours,
    unit_rows,
)
from training.models.ease import EASEScorer


def test_unit_rows_have_unit_length_and_a_zero_row_stays_zero() -> None:
    rows = np.array([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]], dtype=np.float64)
    unit = unit_rows(rows)
    assert unit.dtype == np.float32 and unit.flags.c_contiguous
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])
    assert rows[0, 0] == 3.0  # the input is not changed


def test_an_inner_product_scorer_gets_both_indexes(tmp_path: Path) -> None:
    scorer = catalog_scorer()
    built = build_for_scorer(scorer, tmp_path, N_ITEMS, nprobe=None)
    assert built is not None
    files, retrieval = built
    assert files == {INDEX_FILE: tmp_path / INDEX_FILE, SIMILAR_FILE: tmp_path / SIMILAR_FILE}
    assert retrieval["file"] == INDEX_FILE and retrieval["similar"]["file"] == SIMILAR_FILE
    vectors = scorer.item_vectors().numpy()
    assert retrieval["similar"]["dims"] == vectors.shape[1]
    assert retrieval["dims"] == scorer.inner_product_table().shape[1]
    assert retrieval["similar"]["n_items"] == N_ITEMS
    # The similar-items index's breadth was measured on this catalog (``calibrate_nprobe``).
    calibration = retrieval["similar"]["calibration"]
    chosen = retrieval["similar"]["nprobe"]
    assert calibration["tried"][str(chosen)] == calibration["recall"]
    assert calibration["recall"] >= 0.95 or chosen == retrieval["similar"]["nlist"]

    # With every list probed the similar-items index ranks by exact cosine.
    index = faiss.read_index(str(files[SIMILAR_FILE]))
    faiss.extract_index_ivf(index).nprobe = faiss.extract_index_ivf(index).nlist
    unit = unit_rows(vectors)
    queries = unit[[0, 7, 99]]
    distances, labels = index.search(queries, 20)
    exact = np.argsort(-(queries @ unit.T), axis=1, kind="stable")[:, :20]
    assert (labels == exact).mean() > 0.95  # ties aside
    assert labels[:, 0].tolist() == [0, 7, 99]  # an item is its own nearest
    np.testing.assert_allclose(distances[:, 0], 1.0, rtol=1e-5)


def test_a_scorer_not_of_inner_product_form_gets_none(tmp_path: Path) -> None:
    scorer = EASEScorer({"n_items": 3}, {"b": torch.zeros(3, 3)})
    assert build_for_scorer(scorer, tmp_path, 3) is None
    assert list(tmp_path.iterdir()) == []


def test_exact_neighbours_in_chunks_are_the_top_of_the_whole_product(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ann, "UNIT_CHUNK_ROWS", 7)  # many chunks of a small table
    rng = np.random.default_rng(3)
    unit = unit_rows(rng.standard_normal((50, 4)))
    queries = unit[[1, 20, 33]]
    expected = np.argsort(-(queries @ unit.T), axis=1, kind="stable")[:, :9]
    np.testing.assert_array_equal(exact_neighbours(unit, queries, 9), expected)


def test_calibration_keeps_the_fewest_lists_that_reach_the_target() -> None:
    unit = unit_rows(catalog_scorer().item_vectors().numpy())
    index, _ = build_index(unit, nlist=64)
    chosen, calibration = calibrate_nprobe(index, unit, target=0.9, queries=50, k=20)
    tried = {int(n): r for n, r in calibration.tried.items()}
    assert sorted(tried) == [n for n in (16, 32, 64) if n <= chosen]  # doubling, then stop
    assert tried[chosen] == calibration.recall >= 0.9 or chosen == 64
    assert all(r < 0.9 for n, r in tried.items() if n < chosen)
    # The recall is the share of each sampled item's exact top 21 (itself included).
    faiss.extract_index_ivf(index).nprobe = chosen
    sample = np.sort(np.random.default_rng(0).choice(len(unit), 50, replace=False))
    _, found = index.search(unit[sample], 21)
    exact = exact_neighbours(unit, unit[sample], 21)
    hits = sum(len(set(f) & set(e)) for f, e in zip(found, exact, strict=True))
    assert calibration.recall == round(hits / exact.size, 4)
    assert (calibration.queries, calibration.k, calibration.target_recall) == (50, 20, 0.9)


def test_an_index_built_from_rows_read_in_chunks_is_the_index_of_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # genrec models index reads the model's table a chunk at a time (ann.scorer_rows):
    # the training sample and the lists must be those of the whole table.
    monkeypatch.setattr(ann, "UNIT_CHUNK_ROWS", 257)  # many chunks, the last one short
    scorer = catalog_scorer()
    whole, whole_params = build_index(ann.item_table(scorer), nlist=20)
    chunked, chunked_params = build_index(ann.scorer_rows(scorer, N_ITEMS), nlist=20)
    assert np.array_equal(faiss.serialize_index(chunked), faiss.serialize_index(whole))
    assert {**chunked_params.to_dict(), "build_seconds": 0} == {
        **whole_params.to_dict(),
        "build_seconds": 0,
    }


def test_rows_that_run_short_of_the_catalog_are_refused() -> None:
    table = unit_rows(np.random.default_rng(1).standard_normal((100, 4)))
    short = ann.Rows(120, 4, lambda start, stop: table[start:stop])  # 20 items missing
    with pytest.raises(ann.AnnError, match="100 rows, not its 120 items"):
        build_index(short, nlist=2)


def test_a_small_catalog_builds_without_faiss_asking_for_more_points(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """FAISS's k-means warned "please provide at least 39 training points" on every save of
    a catalog of fewer rows than that per list: nothing an operator could act on."""
    rows = np.random.default_rng(0).standard_normal((25, 8)).astype(np.float32)
    for nlist in (1, 4):
        _, params = ann.build_index(rows, nlist=nlist, nprobe=1)
        assert params.train_rows == 25
    assert "training points" not in capfd.readouterr().err
