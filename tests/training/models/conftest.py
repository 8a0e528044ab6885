"""Tiny seeded data with structure, shared by the contract test and the per-model tests.

Two user groups, two item groups: group-g users rate most of their own group's
items 4-5 and a few of the other group's items 1-2. Item popularity is skewed
inside each group (low item ids are rated more), so popularity is a real but
beatable baseline: it knows which items are popular, not which group a user
is in. Small enough that every model trains in about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from training.data.interactions import Interactions
from training.models.base import History, Scorer

N_USERS = 60
N_ITEMS = 40
GROUP_ITEMS = N_ITEMS // 2


@dataclass(frozen=True)
class StructuredData:
    """Training ratings plus, per user, held-out liked items (never in train)."""

    train: Interactions
    heldout: Interactions  # liked (4-5) ratings removed from train, for ranking checks


def _skewed_choice(rng: np.random.Generator, items: np.ndarray, k: int) -> np.ndarray:
    weights = 1.0 / (1.0 + np.arange(len(items)))  # Zipf-like within the group
    return rng.choice(items, size=k, replace=False, p=weights / weights.sum())


def make_structured(seed: int = 0) -> StructuredData:
    """60 users x 40 items, explicit 1-5 ratings, 3 liked items per user held out."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, int, bool]] = []  # user, item, rating, held out
    for u in range(N_USERS):
        own = np.arange(GROUP_ITEMS) + GROUP_ITEMS * (u % 2)
        other = np.arange(GROUP_ITEMS) + GROUP_ITEMS * (1 - u % 2)
        liked = _skewed_choice(rng, own, 12)
        held = set(rng.choice(12, size=3, replace=False).tolist())
        for pos, i in enumerate(liked):
            rows.append((u, int(i), int(rng.integers(4, 6)), pos in held))
        for i in rng.choice(other, size=3, replace=False):
            rows.append((u, int(i), int(rng.integers(1, 3)), False))
    users, items, ratings, held = (np.array(c) for c in zip(*rows, strict=True))
    everything = Interactions.from_arrays(
        [f"u{u}" for u in users], [f"i{i}" for i in items], ratings.astype(np.float32)
    )
    return StructuredData(train=everything.subset(~held), heldout=everything.subset(held))


@pytest.fixture(scope="session")
def structured() -> StructuredData:
    return make_structured(0)


def _hit_rate(scorer: Scorer, train: Interactions, heldout: Interactions, k: int = 5) -> float:
    """Fraction of held-out liked items in each user's top-k (training items excluded).

    A deliberately small, self-contained metric so these tests do not depend on
    training/evaluate.py; users are folded in from their training rows.
    """
    matrix = train.to_csr()
    users = np.unique(heldout.users)
    history = History.from_csr(matrix, users)
    with torch.no_grad():
        scores = scorer.score(scorer.user_state(torch.full((len(users),), -1), history))
    seen = torch.as_tensor(matrix[users].toarray() > 0)
    scores = scores.masked_fill(seen, -torch.inf)
    top = torch.topk(scores, k, dim=1).indices.numpy()
    relevant = heldout.to_csr()[users]
    hits = sum(len(set(top[b]) & set(relevant[b].indices)) for b in range(len(users)))
    return hits / relevant.nnz


@pytest.fixture(scope="session")
def hit_rate() -> Callable[[Scorer, Interactions, Interactions, int], float]:
    """The ``_hit_rate`` function (fixtures are how test modules share helpers here)."""
    return _hit_rate
