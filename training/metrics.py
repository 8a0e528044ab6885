"""Ranking and rating metrics: pure numpy, vectorised over users.

Every top-k metric takes the same two inputs:

* ``ranked`` — (B, K) int array, row ``b`` the item indices recommended to
  user ``b``, best first (``K >= k``; only the first ``k`` columns are read);
* ``relevant`` — (B, I) CSR matrix, row ``b`` the user's held-out relevant
  items (any non-zero stored entry counts as relevant: binary relevance).

and returns a (B,) array of per-user values (``coverage`` alone is a scalar:
it describes the catalogue, not a user). Averaging, and skipping users with
nothing relevant, is the caller's job (``training.evaluate``) so that the
per-user values stay available for standard deviations and significance tests.

Definitions (``rel_j`` = 1 if the item at rank ``j`` (1-based) is relevant,
``R`` = |relevant|):

* precision@k = sum_{j<=k} rel_j / k
* recall@k    = sum_{j<=k} rel_j / R                 (``denominator="relevant"``)
* recall@k    = sum_{j<=k} rel_j / min(k, R)         (``denominator="min"``, Liang
  et al. 2018's Mult-VAE code; the strong-generalization protocol uses it)
* NDCG@k      = DCG@k / IDCG@k, DCG@k = sum_{j<=k} rel_j / log2(j + 1),
  IDCG@k = sum_{j<=min(k, R)} 1 / log2(j + 1)
* MRR@k       = 1 / (rank of the first relevant item), 0 if none in the top k
* MAP@k       = sum_{j<=k} precision@j * rel_j / min(k, R)
* hit@k       = 1 if any of the top k is relevant
* coverage@k  = |distinct items in all users' top k| / n_items

Metrics whose denominator is ``R`` (recall, NDCG, MAP) are NaN for users with
``R = 0``: the value is undefined, and a silent 0 would bias averages.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

RecallDenominator = Literal["relevant", "min"]


class MetricError(ValueError):
    """Inputs to a metric are inconsistent; the message says how."""


# --------------------------------------------------------------------------- helpers


def _check(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    ranked = np.asarray(ranked)
    if ranked.ndim != 2:
        raise MetricError(f"ranked must be a (B, K) array, got shape {ranked.shape}")
    if relevant.shape[0] != ranked.shape[0]:
        raise MetricError(
            f"ranked has {ranked.shape[0]} rows but relevant has {relevant.shape[0]}; "
            "they must describe the same users in the same order"
        )
    if k < 1:
        raise MetricError(f"k must be >= 1, got {k}")
    if k > ranked.shape[1]:
        raise MetricError(f"k={k} exceeds the {ranked.shape[1]} ranked items per user")
    return ranked[:, :k]


def hits(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """(B, k) bool: whether the item at each rank is relevant to that user.

    Looks up ``row * n_items + item`` keys in the sorted keys of ``relevant``
    (one ``searchsorted`` for the whole batch, no dense (B, I) matrix).
    """
    top = _check(ranked, relevant, k).astype(np.int64)
    rel = sp.csr_matrix(relevant, copy=True)  # eliminate_zeros/sort_indices work in place
    rel.eliminate_zeros()
    rel.sort_indices()
    n_items = rel.shape[1]
    row_of_entry = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    keys = row_of_entry * n_items + rel.indices.astype(np.int64)  # sorted: CSR row-major order
    valid = (top >= 0) & (top < n_items)  # padding (-1) is never a hit
    query = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + np.where(valid, top, 0)
    pos = np.searchsorted(keys, query)
    found = keys[np.minimum(pos, len(keys) - 1)] == query if len(keys) else np.zeros_like(valid)
    return found & valid


def n_relevant(relevant: sp.csr_matrix) -> np.ndarray:
    """(B,) number of relevant items per user (stored non-zeros)."""
    rel = sp.csr_matrix(relevant, copy=True)  # eliminate_zeros/sort_indices work in place
    rel.eliminate_zeros()
    return np.diff(rel.indptr).astype(np.float64)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))  # 1/log2(j+1), j = 1..k


# --------------------------------------------------------------------------- top-k metrics


def precision_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """(B,) fraction of the top k that is relevant."""
    return hits(ranked, relevant, k).sum(axis=1) / float(k)


def recall_at_k(
    ranked: np.ndarray,
    relevant: sp.csr_matrix,
    k: int,
    denominator: RecallDenominator = "relevant",
) -> np.ndarray:
    """(B,) relevant items found in the top k over |relevant| (or min(k, |relevant|))."""
    found = hits(ranked, relevant, k).sum(axis=1).astype(np.float64)
    total = n_relevant(relevant)
    if denominator == "min":
        total = np.minimum(total, k)
    elif denominator != "relevant":
        raise MetricError(f"recall denominator must be 'relevant' or 'min', got {denominator!r}")
    return _safe_divide(found, total)


def recall_liang_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """(B,) Liang et al. 2018's recall: found / min(k, |relevant|) (reaches 1 when R > k)."""
    return recall_at_k(ranked, relevant, k, denominator="min")


def ndcg_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """(B,) binary-relevance NDCG with the ideal DCG over min(k, |relevant|) ranks."""
    h = hits(ranked, relevant, k)
    disc = _discounts(k)
    dcg = (h * disc).sum(axis=1)
    ideal_len = np.minimum(n_relevant(relevant), k).astype(np.int64)
    cumulative = np.concatenate([[0.0], np.cumsum(disc)])
    return _safe_divide(dcg, cumulative[ideal_len])


def mrr_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """(B,) reciprocal rank of the first relevant item in the top k, else 0."""
    h = hits(ranked, relevant, k)
    first = np.argmax(h, axis=1)
    return np.where(h.any(axis=1), 1.0 / (first + 1.0), 0.0)


def map_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """(B,) average precision at k, normalised by min(k, |relevant|)."""
    h = hits(ranked, relevant, k).astype(np.float64)
    precision_at_j = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    return _safe_divide((precision_at_j * h).sum(axis=1), np.minimum(n_relevant(relevant), k))


def hit_rate_at_k(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """(B,) 1.0 if any of the top k is relevant, else 0.0."""
    return np.asarray(hits(ranked, relevant, k).any(axis=1), dtype=np.float64)


def coverage_at_k(ranked: np.ndarray, k: int, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one user's top k."""
    ranked = np.asarray(ranked)
    if ranked.ndim != 2 or k > ranked.shape[1]:
        raise MetricError(f"ranked must be (B, K) with K >= k={k}, got shape {ranked.shape}")
    if n_items < 1:
        raise MetricError(f"n_items must be >= 1, got {n_items}")
    top = ranked[:, :k]
    distinct = np.unique(top[(top >= 0) & (top < n_items)])
    return float(len(distinct)) / n_items


# --------------------------------------------------------------------------- rating metrics


def _check_pairs(predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    if p.shape != a.shape:
        raise MetricError(f"{p.size} predictions for {a.size} ratings; they must pair up")
    if p.size == 0:
        raise MetricError("no ratings to compare: the test set is empty")
    return p, a


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Root mean squared error over paired ratings."""
    p, a = _check_pairs(predicted, actual)
    return float(np.sqrt(np.mean((p - a) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute error over paired ratings."""
    p, a = _check_pairs(predicted, actual)
    return float(np.mean(np.abs(p - a)))


TOPK_METRICS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
    "map": map_at_k,
    "hit": hit_rate_at_k,
}
"""Per-user top-k metrics by name (``coverage`` is catalogue-level, handled apart)."""
