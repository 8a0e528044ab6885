"""EASE: the closed form of eq. 8 against a brute-force per-column ridge regression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from training.models.base import History, ModelError
from training.models.ease import EASE, ease_weights
from training.models.popularity import Popularity


def test_closed_form_equals_constrained_ridge_per_column() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((30, 6)) < 0.4).astype(np.float64)
    l2 = 3.0
    b = ease_weights(torch.as_tensor(x.T @ x), l2).double().numpy()
    assert np.allclose(np.diag(b), 0.0)
    for j in range(6):
        others = [i for i in range(6) if i != j]
        xo = x[:, others]
        # eq. 1 for column j with B_jj = 0: ridge of X_j on the other columns
        expected = np.linalg.solve(xo.T @ xo + l2 * np.eye(5), xo.T @ x[:, j])
        assert np.allclose(b[others, j], expected, atol=1e-6)


def test_rejects_non_positive_l2() -> None:
    with pytest.raises(ModelError, match="l2 must be > 0"):
        ease_weights(torch.eye(3), 0.0)


def test_click_threshold_ignores_low_ratings(structured: Any) -> None:
    model = EASE(EASE.Config(l2=5.0, click_threshold=3.5))
    model.fit(structured.train)
    scorer = model.to_scorer()
    liked = History.from_lists([[0, 3]], [[5.0, 4.0]], structured.train.n_items)
    plus_dislike = History.from_lists([[0, 3, 30]], [[5.0, 4.0, 1.0]], structured.train.n_items)
    unknown = torch.tensor([-1])
    torch.testing.assert_close(
        scorer.user_state(unknown, liked), scorer.user_state(unknown, plus_dislike)
    )


def test_beats_popularity(structured: Any, hit_rate: Callable[..., float]) -> None:
    ease = EASE(EASE.Config(l2=5.0, click_threshold=3.5))
    ease.fit(structured.train)
    popularity = Popularity()
    popularity.fit(structured.train)
    train, heldout = structured.train, structured.heldout
    assert hit_rate(ease.to_scorer(), train, heldout, 5) > hit_rate(
        popularity.to_scorer(), train, heldout, 5
    )


def test_threshold_is_ignored_on_implicit_data(structured: Any) -> None:
    implicit = structured.train.binarize(None)  # every rating is now 1.0, explicit=False
    model = EASE(EASE.Config(l2=5.0, click_threshold=3.5))
    model.fit(implicit)
    scorer = model.to_scorer()
    assert scorer.config["click_threshold"] is None
    history = History.from_lists([[0, 3]], None, implicit.n_items)
    assert scorer.user_state(torch.tensor([-1]), history).sum() == 2.0
