"""Hand-computed cases for every metric (values worked out on paper in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from training import metrics as M

# Two users over 6 items.
# user 0: ranked [3, 1, 4, 0, 5], relevant {1, 5, 2}  -> hits at ranks 2 and 5
# user 1: ranked [0, 2, 1, 3, 4], relevant {0}        -> hit at rank 1
RANKED = np.array([[3, 1, 4, 0, 5], [0, 2, 1, 3, 4]])
RELEVANT = sp.csr_matrix(
    (np.ones(4), ([0, 0, 0, 1], [1, 5, 2, 0])),
    shape=(2, 6),
)
L = math.log2


def test_hits_marks_relevant_ranks() -> None:
    expected = np.array([[0, 1, 0, 0, 1], [1, 0, 0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(M.hits(RANKED, RELEVANT, 5), expected)


def test_precision() -> None:
    np.testing.assert_allclose(M.precision_at_k(RANKED, RELEVANT, 2), [1 / 2, 1 / 2])
    np.testing.assert_allclose(M.precision_at_k(RANKED, RELEVANT, 5), [2 / 5, 1 / 5])


def test_recall_both_denominators() -> None:
    # k=1: user 0 found 0 of 3; user 1 found 1 of 1.
    np.testing.assert_allclose(M.recall_at_k(RANKED, RELEVANT, 1), [0.0, 1.0])
    # k=2: user 0 found 1; |rel| = 3 -> 1/3, min(2, 3) = 2 -> 1/2.
    np.testing.assert_allclose(M.recall_at_k(RANKED, RELEVANT, 2), [1 / 3, 1.0])
    np.testing.assert_allclose(M.recall_liang_at_k(RANKED, RELEVANT, 2), [1 / 2, 1.0])
    np.testing.assert_allclose(M.recall_at_k(RANKED, RELEVANT, 2, denominator="min"), [1 / 2, 1.0])


def test_ndcg() -> None:
    # user 0, k=5: DCG = 1/log2(3) + 1/log2(6); IDCG over min(5,3)=3 ranks.
    dcg0 = 1 / L(3) + 1 / L(6)
    idcg0 = 1 / L(2) + 1 / L(3) + 1 / L(4)
    np.testing.assert_allclose(M.ndcg_at_k(RANKED, RELEVANT, 5), [dcg0 / idcg0, 1.0])
    # k=2: DCG0 = 1/log2(3); IDCG0 = 1 + 1/log2(3).
    np.testing.assert_allclose(M.ndcg_at_k(RANKED, RELEVANT, 2), [(1 / L(3)) / (1 + 1 / L(3)), 1.0])


def test_mrr() -> None:
    np.testing.assert_allclose(M.mrr_at_k(RANKED, RELEVANT, 5), [1 / 2, 1.0])
    np.testing.assert_allclose(M.mrr_at_k(RANKED, RELEVANT, 1), [0.0, 1.0])


def test_map() -> None:
    # user 0, k=5: P@2 = 1/2 at rank 2, P@5 = 2/5 at rank 5; / min(5, 3) = 3.
    np.testing.assert_allclose(M.map_at_k(RANKED, RELEVANT, 5), [(1 / 2 + 2 / 5) / 3, 1.0])


def test_hit_rate() -> None:
    np.testing.assert_allclose(M.hit_rate_at_k(RANKED, RELEVANT, 1), [0.0, 1.0])
    np.testing.assert_allclose(M.hit_rate_at_k(RANKED, RELEVANT, 2), [1.0, 1.0])


def test_coverage() -> None:
    # top-2 items: {3, 1} and {0, 2} -> 4 of 6 items.
    assert M.coverage_at_k(RANKED, 2, 6) == pytest.approx(4 / 6)
    assert M.coverage_at_k(RANKED, 5, 6) == pytest.approx(1.0)


def test_user_without_relevant_items_is_nan_where_undefined() -> None:
    relevant = sp.csr_matrix((2, 6))
    assert np.all(np.isnan(M.recall_at_k(RANKED, relevant, 3)))
    assert np.all(np.isnan(M.ndcg_at_k(RANKED, relevant, 3)))
    assert np.all(np.isnan(M.map_at_k(RANKED, relevant, 3)))
    np.testing.assert_array_equal(M.precision_at_k(RANKED, relevant, 3), [0.0, 0.0])
    np.testing.assert_array_equal(M.mrr_at_k(RANKED, relevant, 3), [0.0, 0.0])


def test_padding_and_explicit_zeros_are_not_hits() -> None:
    ranked = np.array([[-1, 2]])
    relevant = sp.csr_matrix((np.array([0.0, 1.0]), ([0, 0], [0, 2])), shape=(1, 3))
    # item 0 stored with value 0 is not relevant; -1 is padding.
    np.testing.assert_array_equal(M.hits(ranked, relevant, 2), [[False, True]])


def test_rmse_mae() -> None:
    predicted = np.array([3.0, 4.0, 1.0])
    actual = np.array([4.0, 4.0, 3.0])
    # errors 1, 0, 2: RMSE = sqrt(5/3), MAE = 1.
    assert M.rmse(predicted, actual) == pytest.approx(math.sqrt(5 / 3))
    assert M.mae(predicted, actual) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: M.precision_at_k(RANKED, RELEVANT, 6), "exceeds"),
        (lambda: M.precision_at_k(RANKED[:1], RELEVANT, 2), "same users"),
        (lambda: M.precision_at_k(RANKED, RELEVANT, 0), "k must be"),
        (lambda: M.recall_at_k(RANKED, RELEVANT, 2, denominator="x"), "denominator"),  # type: ignore[arg-type]
        (lambda: M.rmse(np.ones(2), np.ones(3)), "pair up"),
        (lambda: M.mae(np.ones(0), np.ones(0)), "empty"),
    ],
)
def test_bad_input_says_what_is_wrong(call, message: str) -> None:
    with pytest.raises(M.MetricError, match=message):
        call()


def test_hits_and_n_relevant_leave_the_callers_matrix_alone() -> None:
    """Both drop explicit zeros and sort indices on their own copy, not on the caller's
    matrix (which the evaluation reuses across batches and metrics)."""
    relevant = sp.csr_matrix(
        (np.array([0.0, 1.0, 1.0]), np.array([2, 0, 1]), np.array([0, 3])), shape=(1, 3)
    )
    before = (relevant.data.copy(), relevant.indices.copy(), relevant.indptr.copy())
    M.hits(np.array([[0, 1, 2]]), relevant, 3)
    M.n_relevant(relevant)
    after = (relevant.data, relevant.indices, relevant.indptr)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)
