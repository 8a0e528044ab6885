"""Synthetic explicit ratings with structure, shared by the rating models' unit tests."""

from __future__ import annotations

import numpy as np
import torch

from training.data.interactions import Interactions
from training.models.base import History, Scorer


def synthetic_ratings(seed: int = 0, n_users: int = 80, n_items: int = 50) -> Interactions:
    """Ratings 1..5 from two latent taste factors plus noise, 40% observed."""
    rng = np.random.default_rng(seed)
    taste = rng.normal(size=(n_users, 2))
    style = rng.normal(size=(n_items, 2))
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.4)
    raw = 3 + 1.2 * np.sum(taste[users] * style[items], axis=1) + rng.normal(0, 0.3, len(users))
    return Interactions.from_arrays(users, items, np.clip(np.rint(raw), 1, 5))


def split(data: Interactions, seed: int = 0) -> tuple[Interactions, Interactions]:
    """A seeded random 80/20 split of the records."""
    order = np.random.default_rng(seed).permutation(len(data))
    cut = int(0.8 * len(data))
    return data.subset(order[:cut]), data.subset(order[cut:])


def rmse(scorer: Scorer, train: Interactions, test: Interactions) -> float:
    """RMSE on ``test`` of the test users' states computed from their training rows."""
    users = np.unique(test.users)
    history = History.from_csr(train.to_csr(), users)
    predicted = scorer.predict(scorer.user_state(torch.as_tensor(users), history))
    rows = np.searchsorted(users, test.users)
    errors = predicted.numpy()[rows, test.items] - test.ratings
    return float(np.sqrt(np.mean(errors**2)))
