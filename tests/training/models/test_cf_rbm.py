"""CF-RBM: learns structure with CD-T, fold-in is one upward pass, T follows the schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.models.rating_data import rmse, split, synthetic_ratings
from training.data.interactions import Interactions
from training.models.base import History, ModelError
from training.models.cf_rbm import CFRBM, CFRBMConfig


def small(**overrides) -> CFRBM:
    config = CFRBMConfig(hidden=20, lr=0.5, batch_size=10, epochs=40, cd_stage_epochs=10)
    return CFRBM(config.with_overrides({"patience": None, **overrides}))


def test_beats_the_global_mean_on_structured_data() -> None:
    train, test = split(synthetic_ratings())
    model = small()
    report = model.fit(train)
    global_mean = float(np.sqrt(np.mean((test.ratings - train.ratings.mean()) ** 2)))
    assert report.history[-1].losses["recon_rmse"] < report.history[0].losses["recon_rmse"]
    assert rmse(model.to_scorer(), train, test) < 0.9 * global_mean


def test_cd_steps_rise_through_the_schedule() -> None:
    model = small(cd_steps=(1, 3, 5, 9), cd_stage_epochs=2)
    assert [model.cd_steps_at(e) for e in range(1, 11)] == [1, 1, 3, 3, 5, 5, 9, 9, 9, 9]
    report = small(epochs=4, cd_stage_epochs=2).fit(split(synthetic_ratings())[0])
    assert [r.losses["cd_steps"] for r in report.history] == [1.0, 1.0, 3.0, 3.0]


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


def test_state_is_the_hidden_probabilities_of_one_upward_pass() -> None:
    train, _ = split(synthetic_ratings())
    model = small(epochs=1)
    model.fit(train)
    scorer = model.to_scorer()
    state = scorer.user_state(
        torch.tensor([-1]), History.from_lists([[2, 6]], [[5.0, 1.0]], train.n_items)
    )
    w, c = scorer.t["weight"], scorer.t["hidden_bias"]
    by_hand = torch.sigmoid(c + w[2, 4] + w[6, 0])  # levels 5 -> index 4, 1 -> index 0
    assert torch.allclose(state[0], by_hand, atol=1e-6)


def test_visible_biases_start_at_log_level_frequencies() -> None:
    data = Interactions.from_arrays([0, 1, 2, 0], [0, 0, 0, 1], [5.0, 5.0, 1.0, 3.0])
    model = small()
    model._init_params(data, np.array([1.0, 3.0, 5.0], dtype=np.float32), torch.device("cpu"))
    assert model.params is not None
    # Item 0: levels (1, 3, 5) seen (1, 0, 2) times, +1 smoothing -> (2, 1, 3) / 6.
    expected = np.log(np.array([2, 1, 3]) / 6.0)
    assert np.allclose(model.params.visible_bias[0].numpy(), expected, atol=1e-6)


def test_refuses_bad_settings_and_data() -> None:
    with pytest.raises(ModelError, match="cd_steps"):
        small(cd_steps=(0,)).fit(synthetic_ratings())
    with pytest.raises(ModelError, match="implicit"):
        small().fit(synthetic_ratings().binarize(None))
    with pytest.raises(ModelError, match="distinct values"):
        small().fit(Interactions.from_arrays(np.arange(30), np.arange(30), np.arange(30) / 7.0))
