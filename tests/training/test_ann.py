"""``training.ann``: the index files a version carries (the retrieval index and the
similar-items index over unit-length item vectors) and what the manifest records."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from models_store import ModelStore
from tests.app.serving.ann_catalog import (
    N_ITEMS,
    catalog_scorer,
    save_with_users,
    scorer_with_users,
)
from training import ann
from training.ann import (
    INDEX_FILE,
    SIMILAR_FILE,
    build_for_scorer,
    build_index,
    calibrate_nprobe,
    default_nlist,
    default_nprobe,
    exact_neighbours,
    unit_rows,
)
from training.models.base import History
from training.models.ease import EASEScorer


def test_unit_rows_have_unit_length_and_a_zero_row_stays_zero() -> None:
    rows = np.array([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]], dtype=np.float64)
    unit = unit_rows(rows)
    assert unit.dtype == np.float32 and unit.flags.c_contiguous
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])
    assert rows[0, 0] == 3.0  # the input is not changed


def test_an_index_file_the_file_system_refuses_is_an_os_error(tmp_path: Path) -> None:
    """FAISS raises ``RuntimeError`` with its C++ location for a file it cannot write (a
    full disk: a retrain job's store, found by hand); the job's error read as FAISS
    internals and ``genrec train`` ended in a traceback. It is the file system's
    failure, an ``OSError`` naming the file and the OS's reason, as the store's are."""
    index = faiss.IndexFlatIP(4)
    index.add(np.ones((3, 4), dtype=np.float32))
    target = tmp_path / "no-such-folder" / INDEX_FILE
    with pytest.raises(OSError, match=r"cannot be written: .*No such file or directory") as raised:
        ann.write_index_file(index, target)
    assert str(target) in str(raised.value) and "faiss::" not in str(raised.value)


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
    # Users' queries (any length) against rows read from a model a chunk at a time.
    table = rng.standard_normal((50, 5)).astype(np.float32)
    users = rng.standard_normal((4, 5)).astype(np.float32) * 3
    expected = np.argsort(-(users @ table.T), axis=1, kind="stable")[:, :9]
    rows = ann.Rows(50, 5, lambda start, stop: table[start:stop])
    np.testing.assert_array_equal(exact_neighbours(rows, users, 9), expected)
    # Each user's seen items excluded (across chunks); a user left short is padded with -1.
    seen = [expected[0, :3], np.zeros(0, np.int64), np.array([0, 8, 49]), np.arange(45)]
    scores = users @ table.T
    for u, items in enumerate(seen):
        scores[u, items] = -np.inf
    masked = exact_neighbours(rows, users, 9, exclude=seen)
    np.testing.assert_array_equal(masked[:3], np.argsort(-scores, axis=1, kind="stable")[:3, :9])
    assert sorted(masked[3, :5]) == list(range(45, 50)) and masked[3, 5:].tolist() == [-1] * 4


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


@pytest.mark.parametrize("iid", [False, True])
def test_the_retrieval_index_is_calibrated_on_sampled_training_users(
    tmp_path: Path, iid: bool
) -> None:
    scorer, history = scorer_with_users(iid=iid)
    built = build_for_scorer(scorer, tmp_path, N_ITEMS, history=history, similar_nprobe=16)
    assert built is not None
    retrieval = built[1]
    calibration = retrieval["calibration"]
    nlist = retrieval["nlist"]
    assert nlist == default_nlist(N_ITEMS) == 76
    tried = {int(n): r for n, r in calibration["tried"].items()}
    assert min(tried) == default_nprobe(nlist)  # the default first, then doubling
    assert calibration["recall"] == tried[retrieval["nprobe"]] >= 0.95
    assert all(r < 0.95 for n, r in tried.items() if n < retrieval["nprobe"])
    assert (calibration["queries"], calibration["k"]) == (120, 100)  # every user of 120
    if iid:  # nothing to shortcut: most of the lists, recorded as such
        assert retrieval["nprobe"] >= nlist / 2 and tried[default_nprobe(nlist)] < 0.7
    else:  # a catalog with structure keeps the default breadth
        assert retrieval["nprobe"] == default_nprobe(nlist)

    # The recall is the share of each sampled user's exact top 100 among unseen items that
    # the index serves at the chosen breadth: the users' queries and seen items as serving
    # has them, 200 candidates plus one per seen item fetched and the seen ones masked.
    users = np.arange(120)
    sampled = ann.sample_users(scorer, history, N_ITEMS)
    queries = sampled.queries
    with torch.inference_mode():
        state = scorer.user_state(torch.as_tensor(users), History.from_csr(_csr(history), users))
        np.testing.assert_allclose(queries, scorer.inner_product_queries(state).numpy())
    seen = [history["indices"][history["indptr"][u] : history["indptr"][u + 1]] for u in users]
    assert [s.tolist() for s in sampled.seen] == [s.tolist() for s in seen]
    index = faiss.read_index(str(built[0][INDEX_FILE]))
    assert faiss.extract_index_ivf(index).nprobe == retrieval["nprobe"]
    _, found = index.search(queries, 200 + 10)
    scores = queries @ ann.item_table(scorer).T
    for u, items in enumerate(seen):
        scores[u, items] = -np.inf
    exact = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    hits = sum(len((set(f) - set(s)) & set(e)) for f, s, e in zip(found, seen, exact, strict=True))
    assert abs(calibration["recall"] - hits / exact.size) < 0.005  # ties aside


def test_users_whose_lists_are_always_exact_are_not_sampled() -> None:
    """A user with so many seen items that serving's over-fetch would exceed
    ``GENREC_ANN_MAX_CANDIDATES`` is ranked exactly at any breadth: measuring the index on
    them would measure lists nobody is served."""
    scorer, history = scorer_with_users(iid=False, n_users=6)
    rng = np.random.default_rng(2)
    lists = [np.sort(rng.choice(N_ITEMS, n, replace=False)) for n in (10, 60, 10, 60, 10, 0)]
    history = {
        "indptr": np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64),
        "indices": np.concatenate(lists).astype(np.int64),
        "values": np.ones(sum(len(x) for x in lists), dtype=np.float32),
    }
    # 200 candidates (at least the calibration's 100) plus 10 seen fit in 250; plus 60 not.
    sampled = ann.sample_users(scorer, history, N_ITEMS, max_candidates=250)
    assert [s.tolist() for s in sampled.seen] == [lists[u].tolist() for u in (0, 2, 4)]
    assert sampled.queries.shape == (3, scorer.inner_product_table().shape[1])


def _csr(history: dict[str, np.ndarray]) -> sp.csr_matrix:
    rows = len(history["indptr"]) - 1
    return sp.csr_matrix(
        (history["values"], history["indices"], history["indptr"]), shape=(rows, N_ITEMS)
    )


def test_an_explicit_nprobe_or_no_history_is_not_calibrated(tmp_path: Path) -> None:
    scorer, history = scorer_with_users(iid=True)
    for nprobe, given in ((8, history), (None, None)):
        built = build_for_scorer(
            scorer, tmp_path, N_ITEMS, nprobe=nprobe, history=given, similar_nprobe=16
        )
        assert built is not None
        assert "calibration" not in built[1]
        assert built[1]["nprobe"] == (nprobe or default_nprobe(built[1]["nlist"]))


def test_models_index_calibrates_from_the_stored_history(tmp_path: Path) -> None:
    """``genrec models index`` (``index_version``) reads the whole version to compute the
    users' queries when it calibrates, and the table alone with an explicit nprobe."""
    store = ModelStore(tmp_path / "store")
    version = save_with_users(store, iid=True)
    saved = store.manifest("bpr-mf", version).retrieval
    steps: list[str] = []
    rebuilt = ann.index_version(
        store, "bpr-mf", version, similar_nprobe=16, progress=steps.append
    ).retrieval
    assert rebuilt["calibration"]["tried"] == saved["calibration"]["tried"]
    assert rebuilt["nprobe"] == saved["nprobe"] > default_nprobe(saved["nlist"])
    assert any("all its tensors" in step for step in steps)
    assert any("120 sampled training users" in step for step in steps)
    explicit = ann.index_version(store, "bpr-mf", version, nprobe=4, similar_nprobe=16)
    assert "calibration" not in explicit.retrieval and explicit.retrieval["nprobe"] == 4
    store.load("bpr-mf", version)  # the version still verifies


def test_a_similar_items_nprobe_of_zero_is_refused_not_taken_for_none() -> None:
    """``nprobe or 1`` built the index with nprobe 1 when 0 was given."""
    unit = unit_rows(np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32))
    with pytest.raises(ann.AnnError, match="nprobe must be between 1 and nlist=1, got 0"):
        ann.build_similarity_index(unit, nlist=1, nprobe=0)


def _masked_catalog() -> tuple[faiss.Index, np.ndarray, np.ndarray, list[np.ndarray]]:
    """An IVF index of 32 hand-placed lists, 16 probed by default, and four users (query
    e0) whose 20 seen items are the top of their exact lists, in probed lists (a long
    history: as many seen items as the list is long).

    Near lists (centroids e0 + a small tilt: probed first) hold the seen items (score 2)
    and 300 fillers (score 0.3, enough to fill a served list after masking); far lists
    (centroids -0.5 e0 + a direction: probed last) hold 80 items of score about 1,
    each pulled into its list by a large component along it. So the exact top 20 among
    unseen items all lie in unprobed lists, while the top 20 over all items starts with
    the seen ones, which the default breadth finds."""
    rng = np.random.default_rng(5)
    angles = 2 * np.pi * np.arange(16) / 16
    tilt = np.stack([np.zeros(16), np.cos(angles), np.sin(angles), np.zeros(16)], axis=1)
    away = np.stack([np.zeros(16), np.zeros(16), np.cos(angles), np.sin(angles)], axis=1)
    e0 = np.array([1.0, 0.0, 0.0, 0.0])
    centroids = np.concatenate([e0 + 0.2 * tilt, -0.5 * e0 + away]).astype(np.float32)
    seen = 2 * e0 + 0.01 * rng.standard_normal((20, 4))
    seen[:, 0] = 2 - 0.001 * np.arange(20)
    fillers = 0.3 * e0 + 0.05 * rng.standard_normal((300, 4))
    fillers[:, 0] = 0.3 - 0.0001 * np.arange(300)
    far = np.repeat(away, 5, axis=0) * 5.0
    far[:, 0] = 1.0 - 0.001 * np.arange(80)
    rows = np.ascontiguousarray(np.concatenate([seen, fillers, far]), dtype=np.float32)
    quantizer = faiss.IndexFlatIP(4)
    quantizer.add(centroids)
    index = faiss.IndexIVFFlat(quantizer, 4, 32, faiss.METRIC_INNER_PRODUCT)
    index.add(rows)
    index.nprobe = default_nprobe(32)
    queries = np.tile(e0, (4, 1)).astype(np.float32) * np.arange(1, 5, dtype=np.float32)[:, None]
    return index, rows, queries, [np.arange(20, dtype=np.int64)] * 4


def test_retrieval_calibration_measures_the_lists_served_with_seen_items_masked() -> None:
    """Serving masks a user's seen items and over-fetches to still return k; the seen items
    are the top of a trained user's exact list and the easiest for the index to find. The
    calibration compared the unmasked lists, so it found them and reported a recall of 1
    with the default 16 lists, where every list served at that breadth missed all of the
    user's 20 best unseen items (in lists it does not probe)."""
    index, rows, queries, seen = _masked_catalog()
    assert faiss.extract_index_ivf(index).nprobe == 16
    # The fixture is what it says: unmasked, the default breadth finds the exact top 20.
    _, found = index.search(queries, 20)
    assert all(set(f) == set(range(20)) for f in found)
    chosen, calibration = ann.calibrate_retrieval_nprobe(index, rows, queries, seen, k=20)
    assert calibration.tried == {16: 0.0, 32: 1.0}
    assert (chosen, calibration.recall, calibration.queries, calibration.k) == (32, 1.0, 4, 20)


def test_retrieval_calibration_fetches_one_more_candidate_per_seen_item() -> None:
    """As serving does (``GENREC_ANN_CANDIDATES``, at least k, plus one per seen item): a
    user's best unseen items in the probed lists are found after the seen ones are masked.
    Here the next 20 items after the seen 20 are in probed lists, so the default breadth
    serves them all."""
    index, rows, queries, seen = _masked_catalog()
    rows = rows.copy()
    rows[20:40, 0] = 1.5 - 0.001 * np.arange(20)  # fillers now outrank the far items
    index.reset()
    index.add(rows)
    chosen, calibration = ann.calibrate_retrieval_nprobe(
        index, rows, queries, seen, k=20, candidates=20
    )
    assert (chosen, calibration.tried) == (16, {16: 1.0})
