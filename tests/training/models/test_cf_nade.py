"""CF-NADE: learns structure (1 and 2 layers, factored), fold-in, the ordinal cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.models.rating_data import rmse, split, synthetic_ratings
from training.models.base import History, ModelError
from training.models.cf_nade import CFNADE, CFNADEConfig


def small(**overrides) -> CFNADE:
    config = CFNADEConfig(hidden=32, lr=0.01, weight_decay=0.0, batch_size=16, epochs=40)
    return CFNADE(config.with_overrides({"patience": None, **overrides}))


@pytest.mark.parametrize(
    "overrides", [{}, {"n_layers": 2}, {"factored_rank": 8}, {"ordinal_weight": 0.0}]
)
def test_beats_the_global_mean_on_structured_data(overrides: dict) -> None:
    train, test = split(synthetic_ratings())
    model = small(**overrides)
    report = model.fit(train)
    global_mean = float(np.sqrt(np.mean((test.ratings - train.ratings.mean()) ** 2)))
    assert np.isfinite(report.history[-1].losses["loss"])
    assert report.history[-1].losses["loss"] < report.history[0].losses["loss"]
    assert rmse(model.to_scorer(), train, test) < 0.9 * global_mean


def test_fold_in_follows_the_unseen_users_history() -> None:
    train, _ = split(synthetic_ratings())
    model = small(epochs=20)
    model.fit(train)
    scorer = model.to_scorer()
    items = [[0, 1, 2, 3, 4, 5]]
    unknown = torch.tensor([-1])
    likes = scorer.user_state(unknown, History.from_lists(items, [[5.0] * 6], train.n_items))
    hates = scorer.user_state(unknown, History.from_lists(items, [[1.0] * 6], train.n_items))
    rated = torch.tensor(items[0])
    # Loving the rated items must raise their predictions over hating them.
    assert scorer.predict(likes, rated).mean() > scorer.predict(hates, rated).mean() + 0.5


def test_state_is_the_summed_pre_activation_and_adds_up() -> None:
    train, _ = split(synthetic_ratings())
    model = small(epochs=2)
    model.fit(train)
    scorer = model.to_scorer()
    both = History.from_lists([[3, 7]], [[4.0, 2.0]], train.n_items)
    first = History.from_lists([[3]], [[4.0]], train.n_items)
    second = History.from_lists([[7]], [[2.0]], train.n_items)
    c = scorer.t["hidden_bias"]
    state = scorer.user_state(torch.tensor([-1]), both)
    parts = scorer.user_state(torch.tensor([-1]), first) + scorer.user_state(
        torch.tensor([-1]), second
    )
    assert torch.allclose(state, parts - c, atol=1e-5)
    # Shared weights: rating 4 on item 3 feeds W^1 + W^2 + W^3 + W^4 (cumulative table).
    assert model.net is not None
    expected = c + model.net.input_weight[:4, 3].sum(0) + model.net.input_weight[:2, 7].sum(0)
    assert torch.allclose(state[0], expected, atol=1e-5)


def test_scores_are_expected_ratings_within_the_scale() -> None:
    train, _ = split(synthetic_ratings())
    model = small(epochs=2)
    model.fit(train)
    scorer = model.to_scorer()
    state = scorer.user_state(torch.tensor([0, 1]), History.from_csr(train.to_csr(), [0, 1]))
    scores = scorer.score(state)
    assert scores.shape == (2, train.n_items)
    assert float(scores.min()) >= 1.0 and float(scores.max()) <= 5.0
    subset = torch.tensor([4, 9, 2])
    assert torch.allclose(scorer.score(state, subset), scores[:, subset], atol=1e-6)


def test_refuses_bad_settings_and_data() -> None:
    with pytest.raises(ModelError, match="n_layers"):
        small(n_layers=3).fit(synthetic_ratings())
    with pytest.raises(ModelError, match="implicit"):
        small().fit(synthetic_ratings().binarize(None))
    with pytest.raises(ModelError, match="ordinal_weight"):
        small(ordinal_weight=1.5).fit(synthetic_ratings())
