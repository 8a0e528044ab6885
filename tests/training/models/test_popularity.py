"""Popularity: counts distinct users per item; the same ranking for everyone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from training.data.interactions import Interactions
from training.models.base import History
from training.models.popularity import Popularity


def test_counts_distinct_users_per_item() -> None:
    # item a: users 1, 2 (user 1 twice); item b: user 1; item c: nobody in train
    data = Interactions.from_arrays(["1", "1", "2", "1"], ["a", "a", "a", "b"], [5, 4, 3, 2])
    model = Popularity()
    model.fit(data)
    scorer = model.to_scorer()
    state = scorer.user_state(torch.tensor([-1, 0]), History.from_lists([[1], []], None, 2))
    torch.testing.assert_close(scorer.score(state), torch.tensor([[2.0, 1.0], [2.0, 1.0]]))


def test_beats_a_random_ranking(structured: Any, hit_rate: Callable[..., float]) -> None:
    model = Popularity()
    model.fit(structured.train)
    train = structured.train
    # a random ranking hits k / (unseen items) of the held-out items on average
    unseen = train.n_items - np.diff(train.to_csr().indptr).mean()
    assert hit_rate(model.to_scorer(), train, structured.heldout, 5) > 5 / unseen
