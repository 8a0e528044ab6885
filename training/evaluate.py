"""Offline evaluation through ``Scorer``: it measures exactly what serving computes.

Serving answers a request with ``user_state -> score -> mask seen items ->
top-k``; ``rank`` does the same, in batches, so an offline figure is the
figure of the deployed artifact. Nothing here builds a dense all-users x
all-items matrix: each batch of ``batch_size`` users is scored, masked and
cut to its top k before the next one.

Users: ``-1`` asks the scorer to fold the user in from the given history
(strong generalization, anonymous users); a known index means the user is
the artifact's own and has no interactions beyond its training rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np
import scipy.sparse as sp
import torch

from training import metrics as M
from training.data.interactions import Interactions
from training.models.base import History, Scorer, Validation
from training.overall import overall_form
from training.segments import ByActivity, by_activity, ratings_by_activity

DEFAULT_KS: tuple[int, ...] = (5, 10, 20, 50, 100)
DEFAULT_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg")
ExcludeSpec: TypeAlias = sp.csr_matrix | Literal["history"] | None


class EvaluationError(ValueError):
    """Evaluation inputs do not fit together; the message says how."""


# --------------------------------------------------------------------------- ranking


def _mask_excluded(scores: torch.Tensor, exclude: sp.csr_matrix) -> None:
    """Set the (row, item) entries stored in ``exclude`` to -inf, in place."""
    coo = exclude.tocoo()
    if coo.nnz:
        rows = torch.as_tensor(coo.row.astype(np.int64), device=scores.device)
        cols = torch.as_tensor(coo.col.astype(np.int64), device=scores.device)
        scores[rows, cols] = -torch.inf


@torch.no_grad()
def rank(
    scorer: Scorer,
    users: np.ndarray,
    history: sp.csr_matrix,
    k: int,
    exclude: sp.csr_matrix | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """(B, k) item indices, best first, as serving would return them.

    ``users`` (B,) are scorer user indices (-1 = fold in); ``history`` and
    ``exclude`` are (B, I) CSR matrices aligned row by row with ``users``.
    Excluded items score -inf; if a user has fewer than ``k`` allowed items
    the tail of the row holds excluded ones (never counted as relevant).
    """
    users = np.asarray(users, dtype=np.int64)
    history = sp.csr_matrix(history)
    n_items = scorer.n_items
    if history.shape != (len(users), n_items):
        raise EvaluationError(
            f"history must be ({len(users)}, {n_items}) (one row per user, one column per "
            f"scorer item), got {history.shape}"
        )
    if exclude is not None:
        exclude = sp.csr_matrix(exclude)
        if exclude.shape != history.shape:
            raise EvaluationError(f"exclude shape {exclude.shape} != history {history.shape}")
    if not 1 <= k <= n_items:
        raise EvaluationError(f"k must be in [1, {n_items}] (the number of items), got {k}")
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be >= 1, got {batch_size}")
    device = scorer.device
    out = np.empty((len(users), k), dtype=np.int64)
    for start in range(0, len(users), batch_size):
        rows = np.arange(start, min(start + batch_size, len(users)))
        batch = History.from_csr(history, rows, device=device)
        state = scorer.user_state(torch.as_tensor(users[rows], device=device), batch)
        scores = scorer.score(state).float()
        if exclude is not None:
            _mask_excluded(scores, exclude[rows])
        out[rows] = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    return out


# --------------------------------------------------------------------------- top-k evaluation


def _per_user(
    name: str,
    ranked: np.ndarray,
    relevant: sp.csr_matrix,
    k: int,
    recall_denominator: M.RecallDenominator,
) -> np.ndarray:
    if name == "recall":
        return M.recall_at_k(ranked, relevant, k, denominator=recall_denominator)
    return M.TOPK_METRICS[name](ranked, relevant, k)


def _check_topk_args(ks: Sequence[int], metrics: Sequence[str], n_items: int) -> None:
    known = {*M.TOPK_METRICS, "coverage"}
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise EvaluationError(f"unknown metric(s) {unknown}; known: {', '.join(sorted(known))}")
    if not ks:
        raise EvaluationError("ks is empty: give at least one cut-off")
    bad = [k for k in ks if not 1 <= k <= n_items]
    if bad:
        raise EvaluationError(f"cut-offs {bad} are outside [1, {n_items}] (the number of items)")


def evaluate_topk_by_activity(
    scorer: Scorer,
    history: sp.csr_matrix,
    relevant: sp.csr_matrix,
    ks: Sequence[int] = DEFAULT_KS,
    metrics: Sequence[str] = DEFAULT_METRICS,
    users: np.ndarray | None = None,
    exclude: ExcludeSpec = "history",
    recall_denominator: M.RecallDenominator = "relevant",
    batch_size: int = 1024,
) -> tuple[dict[str, float], ByActivity]:
    """``evaluate_topk``'s figures, and each activity segment's mean of every per-user
    metric (``training.segments``: a user's activity is the number of items in their
    ``history`` row, what the model saw). One ranking serves both, the segments cost a
    bincount; ``coverage`` describes the catalogue, not a user, and has no segment figure.
    """
    history = sp.csr_matrix(history)
    relevant = sp.csr_matrix(relevant)
    if history.shape != relevant.shape:
        raise EvaluationError(f"history {history.shape} and relevant {relevant.shape} differ")
    _check_topk_args(ks, metrics, scorer.n_items)
    rows = np.flatnonzero(M.n_relevant(relevant) > 0)
    if len(rows) == 0:
        raise EvaluationError("no user has a relevant item: nothing to evaluate")
    if users is None:
        scorer_users = np.full(len(rows), -1, dtype=np.int64)
    else:
        users = np.asarray(users, dtype=np.int64)
        if users.shape != (history.shape[0],):
            raise EvaluationError(f"users must have one entry per row ({history.shape[0]})")
        scorer_users = users[rows]
    mask = history if isinstance(exclude, str) and exclude == "history" else exclude
    if isinstance(mask, str):
        raise EvaluationError(f"exclude must be a CSR matrix, 'history' or None, got {mask!r}")
    mask_rows = None if mask is None else sp.csr_matrix(mask)[rows]
    ranked = rank(scorer, scorer_users, history[rows], max(ks), mask_rows, batch_size)
    rel_rows = relevant[rows]
    result: dict[str, float] = {}
    per_user: dict[str, np.ndarray] = {}
    for name in metrics:
        for k in ks:
            if name == "coverage":
                result[f"coverage@{k}"] = M.coverage_at_k(ranked, k, scorer.n_items)
            else:
                values = _per_user(name, ranked, rel_rows, k, recall_denominator)
                result[f"{name}@{k}"] = float(np.mean(values))
                per_user[f"{name}@{k}"] = values
    activity = np.diff(history.indptr)[rows]
    return result, by_activity(activity, per_user)


evaluate_topk = overall_form(
    evaluate_topk_by_activity,
    lambda result: result[0],  # the figures, without the segments'
    "evaluate_topk",
    """Mean top-k metrics over users with at least one relevant item.

    ``history`` and ``relevant`` are (U, I) CSR matrices over the same rows;
    row ``u`` of ``history`` is the scorer's input for user ``u``. ``users``
    gives the scorer user index of each row (None: -1 for every row, i.e.
    fold in from ``history``). ``exclude`` (default: the history itself) is
    masked out of the ranking. Returns ``{"ndcg@100": ..., "recall@20": ...}``
    for every metric x cut-off; users with no relevant item are skipped.
    """,
)


# --------------------------------------------------------------------------- rating evaluation


@torch.no_grad()
def _predict_pairs(
    scorer: Scorer, train: sp.csr_matrix, users: np.ndarray, items: np.ndarray, batch_size: int
) -> np.ndarray:
    """Predicted rating of each (user, item) pair, users' states from their training rows."""
    device = scorer.device
    order = np.argsort(users, kind="stable")
    unique_users, starts = np.unique(users[order], return_index=True)
    bounds = np.append(starts, len(order))
    out = np.empty(len(users), dtype=np.float64)
    for b in range(0, len(unique_users), batch_size):
        batch_users = unique_users[b : b + batch_size]
        state = scorer.user_state(
            torch.as_tensor(batch_users, device=device),
            History.from_csr(train, batch_users, device=device),
        )
        lo, hi = bounds[b], bounds[min(b + batch_size, len(unique_users))]
        pair_idx = order[lo:hi]
        candidates, col = np.unique(items[pair_idx], return_inverse=True)
        preds = scorer.predict(state, torch.as_tensor(candidates, device=device)).cpu().numpy()
        row = np.searchsorted(batch_users, users[pair_idx])
        out[pair_idx] = preds[row, col]
    return out


def serving_baseline(
    train: sp.csr_matrix, users: np.ndarray, rating_range: tuple[float, float]
) -> np.ndarray:
    """What serving answers for each of ``users`` where the model predicts nothing.

    ``app.serving.recommend.prediction_baseline``: the user's mean training
    rating when they have one, else the mean of all training ratings (the
    middle of the rating range when there are none), clipped to the range.
    Measured with it, a validation figure is the figure of the served
    predictions on any rating scale, where a constant (3) is only right for
    1-5 stars.
    """
    low, high = rating_range
    overall = float(np.mean(train.data, dtype=np.float64)) if train.nnz else (low + high) / 2
    counts = np.diff(train.indptr)
    rows = np.repeat(np.arange(train.shape[0]), counts)
    sums = np.bincount(rows, weights=train.data.astype(np.float64), minlength=train.shape[0])
    means = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
    return np.clip(means[users], low, high)


def evaluate_ratings_by_activity(
    scorer: Scorer,
    train: sp.csr_matrix,
    test: Interactions,
    default_rating: float | None = None,
    batch_size: int = 1024,
    predict_cold_items: bool = False,
) -> tuple[dict[str, float], ByActivity]:
    """``evaluate_ratings``'s figures, and each activity segment's from the pairs of its
    users (a user's activity: their number of training ratings, ``training.segments``)."""
    train = sp.csr_matrix(train)
    if train.shape != (test.n_users, test.n_items):
        raise EvaluationError(
            f"train matrix {train.shape} is not over the test's id maps "
            f"({test.n_users}, {test.n_items})"
        )
    if len(test) == 0:
        raise EvaluationError("the rating test set is empty")
    known_user = np.diff(train.indptr) > 0
    known_item = np.bincount(train.indices, minlength=train.shape[1]) > 0
    known = known_user[test.users] & (predict_cold_items | known_item[test.items])
    if default_rating is None:
        predicted = serving_baseline(train, test.users, scorer.rating_range)
    else:
        predicted = np.full(len(test), float(default_rating), dtype=np.float64)
    if known.any():
        predicted[known] = _predict_pairs(
            scorer, train, test.users[known], test.items[known], batch_size
        )
    overall = {
        "rmse": M.rmse(predicted, test.ratings),
        "mae": M.mae(predicted, test.ratings),
        "n": float(len(test)),
        "n_default": float((~known).sum()),
    }
    activity = np.diff(train.indptr)
    return overall, ratings_by_activity(activity, test.users, predicted, test.ratings, ~known)


evaluate_ratings = overall_form(
    evaluate_ratings_by_activity,
    lambda result: result[0],  # the figures, without the segments'
    "evaluate_ratings",
    """RMSE and MAE of ``scorer.predict`` on the test ratings.

    A known user's state comes from their training row (and their index).
    Pairs whose user has no training rating or whose item has none cannot
    be predicted; the count is reported as ``n_default`` so the convention
    is visible. By default (``None``) they get what serving answers for
    them (``serving_baseline``: the user's mean training rating, else the
    training mean), so ``genrec train``, ``genrec tune`` and the retrain
    gate measure the served form on any rating scale. A paper protocol
    passes its own constant: the AutoRec authors' code predicts 3.
    ``predict_cold_items`` lets a model that can score an item without
    ratings (ConvMF, from the item's text) predict those pairs itself.
    """,
)


# --------------------------------------------------------------------------- validation objects


def topk_validation(
    history: sp.csr_matrix,
    relevant: sp.csr_matrix,
    metric: str = "ndcg@100",
    ks: Sequence[int] | None = None,
    metrics: Sequence[str] | None = None,
    users: np.ndarray | None = None,
    exclude: ExcludeSpec = "history",
    recall_denominator: M.RecallDenominator = "relevant",
    batch_size: int = 1024,
) -> Validation:
    """Early-stopping validation that runs ``evaluate_topk`` and selects on ``metric``."""
    name, _, cut = metric.partition("@")
    if not cut.isdigit():
        raise EvaluationError(f"validation metric must look like 'ndcg@100', got {metric!r}")
    ks_ = tuple(ks) if ks is not None else (int(cut),)
    metrics_ = tuple(metrics) if metrics is not None else (name,)
    history, relevant = sp.csr_matrix(history), sp.csr_matrix(relevant)

    def run(scorer: Scorer) -> tuple[dict[str, float], ByActivity]:
        return evaluate_topk_by_activity(
            scorer, history, relevant, ks_, metrics_, users, exclude, recall_denominator, batch_size
        )

    return Validation(
        evaluate=lambda scorer: run(scorer)[0],
        metric=metric,
        higher_is_better=True,
        evaluate_by_activity=run,
    )


def rating_validation(
    train: sp.csr_matrix,
    valid: Interactions,
    metric: Literal["rmse", "mae"] = "rmse",
    default_rating: float | None = None,
    batch_size: int = 1024,
    predict_cold_items: bool = False,
) -> Validation:
    """Early-stopping validation on held-out ratings (lower RMSE/MAE is better).

    ``default_rating`` as in ``evaluate_ratings`` (None: serving's baseline)."""
    if metric not in ("rmse", "mae"):
        raise EvaluationError(f"rating validation metric must be 'rmse' or 'mae', got {metric!r}")
    train = sp.csr_matrix(train)

    def run(scorer: Scorer) -> tuple[dict[str, float], ByActivity]:
        return evaluate_ratings_by_activity(
            scorer, train, valid, default_rating, batch_size, predict_cold_items
        )

    return Validation(
        evaluate=lambda scorer: run(scorer)[0],
        metric=metric,
        higher_is_better=False,
        evaluate_by_activity=run,
    )
