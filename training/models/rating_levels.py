"""Helpers shared by the explicit-rating models (AutoRec, CF-NADE, CF-RBM).

The generative rating models (CF-NADE, CF-RBM) treat a rating as one of K
discrete levels and predict the expected rating over a K-way softmax. The
levels are read from the training data (e.g. 1..5 for MovieLens-100K, 0.5..5
in halves for ML-10M) and stored in the artifact, so serving maps a new
rating onto the same levels the model was trained with.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from training.data.interactions import Interactions
from training.models.base import History, ModelError, UnsuitableData

MAX_LEVELS = 20  # more distinct values than this is a continuous rating, not a K-way scale


def require_explicit(train: Interactions, model: str) -> None:
    """Refuse implicit or empty data (``UnsuitableData``): these models learn rating values."""
    if not train.explicit:
        raise UnsuitableData(
            f"model '{model}' predicts explicit ratings; the training data is implicit "
            "(no rating column)"
        )
    if len(train) == 0:
        raise UnsuitableData(f"model '{model}' cannot train on an empty interaction set")
    if not np.all(np.isfinite(train.ratings)):
        raise UnsuitableData(f"model '{model}': training ratings contain NaN or infinite values")


def rating_values(train: Interactions, model: str) -> np.ndarray:
    """(K,) sorted distinct rating values of ``train``: the model's rating levels.

    ``UnsuitableData`` for fewer than two (all ratings equal: nothing to tell
    apart) or more than ``MAX_LEVELS``; the models' ``check_data`` is this call.
    """
    require_explicit(train, model)
    values = np.unique(train.ratings.astype(np.float32))
    if len(values) < 2:
        raise UnsuitableData(
            f"model '{model}' needs at least two distinct rating values; got {values.tolist()}"
        )
    if len(values) > MAX_LEVELS:
        raise UnsuitableData(
            f"model '{model}' models ratings as K discrete levels; the data has "
            f"{len(values)} distinct values (at most {MAX_LEVELS} supported)"
        )
    return values


def level_index(values: Tensor, levels: Tensor) -> Tensor:
    """(N,) rating values -> (N,) int64 index of the nearest level in ``levels`` (K,).

    Serving may log a rating the training data never had (4.5 on a 1..5 scale);
    the nearest level is the model's best reading of it.
    """
    if values.numel() and not bool(torch.isfinite(values).all()):
        raise ModelError("ratings in the history must be finite numbers")
    return (values[:, None] - levels[None, :]).abs().argmin(dim=1)


def expected_rating(logits: Tensor, levels: Tensor) -> Tensor:
    """(..., K) logits of a K-way softmax -> (...) expected rating Σ_k value_k p_k."""
    return torch.softmax(logits, dim=-1) @ levels


def shuffled_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Indices ``0..n-1`` in a fresh random order, cut into batches of ``batch_size``."""
    if batch_size < 1:
        raise ModelError(f"batch_size must be at least 1, got {batch_size}")
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def check_history(history: History, n_items: int, model: str) -> None:
    """Histories from serving must index items the artifact knows."""
    if history.n_items != n_items:
        raise ModelError(
            f"model '{model}' was trained on {n_items} items; the history is over "
            f"{history.n_items} items"
        )
    if history.indices.numel() and (
        int(history.indices.min()) < 0 or int(history.indices.max()) >= n_items
    ):
        raise ModelError(f"model '{model}': history item indices must lie in [0, {n_items})")
