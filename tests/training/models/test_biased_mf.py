"""Biased MF: the ridge fold-in is the exact per-user optimum; it beats the global mean."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from training.models.base import History, ModelError
from training.models.biased_mf import BiasedMF, fold_in_users

SMALL = {"factors": 8, "epochs": 30, "lr": 0.05, "batch_size": 64}


def test_fold_in_is_the_ridge_solution() -> None:
    rng = np.random.default_rng(0)
    d, n_items, l2 = 3, 10, 0.1
    items = torch.as_tensor(
        np.hstack(
            [rng.normal(size=(n_items, d)), rng.normal(3, 0.5, (n_items, 1)), np.ones((n_items, 1))]
        ),
        dtype=torch.float32,
    )
    rated, ratings = [1, 4, 6, 8], [5.0, 3.0, 4.0, 1.0]
    p, b = fold_in_users(History.from_lists([rated], [ratings], n_items), items, l2, d)
    z = np.hstack([items[rated, :d].numpy(), np.ones((4, 1))])
    y = np.array(ratings) - items[rated, d].numpy()
    expected = np.linalg.solve(z.T @ z + l2 * 4 * np.eye(d + 1), z.T @ y)
    np.testing.assert_allclose(np.append(p[0].numpy(), b[0].numpy()), expected, rtol=1e-4)


def test_empty_history_scores_the_item_baseline(structured: Any) -> None:
    model = BiasedMF(BiasedMF.Config().with_overrides({**SMALL, "epochs": 2}))
    model.fit(structured.train)
    scorer = model.to_scorer()
    empty = History.from_lists([[]], [[]], structured.train.n_items)
    scores = scorer.score(scorer.user_state(torch.tensor([-1]), empty))
    torch.testing.assert_close(scores[0], scorer.t["items"][:, 8])  # b_i + mu


def test_rejects_unknown_optimizer(structured: Any) -> None:
    with pytest.raises(ModelError, match="optimizer"):
        BiasedMF(BiasedMF.Config(optimizer="lbfgs")).fit(structured.train)


def test_beats_the_global_mean(structured: Any) -> None:
    model = BiasedMF(BiasedMF.Config().with_overrides(SMALL))
    model.fit(structured.train)
    scorer = model.to_scorer()
    test = structured.heldout
    users = torch.as_tensor(test.users)
    history = History.from_csr(structured.train.to_csr(), test.users)
    with torch.no_grad():
        predicted = scorer.predict(scorer.user_state(users, history))
    pairs = predicted[torch.arange(len(test)), torch.as_tensor(test.items)].numpy()
    rmse = np.sqrt(np.mean((pairs - test.ratings) ** 2))
    baseline = np.sqrt(np.mean((structured.train.ratings.mean() - test.ratings) ** 2))
    assert rmse < 0.8 * baseline
