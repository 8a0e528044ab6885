"""I-AutoRec and U-AutoRec: learn structure, fold in unseen users, refuse bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.data.interactions import Interactions
from training.models.autorec import AutoRecConfig, IAutoRec, UAutoRec
from training.models.base import History, ModelError, Validation


def synthetic_ratings(seed: int = 0, n_users: int = 80, n_items: int = 50) -> Interactions:
    """Ratings 1..5 from two latent taste factors plus noise, 40% observed."""
    rng = np.random.default_rng(seed)
    taste = rng.normal(size=(n_users, 2))
    style = rng.normal(size=(n_items, 2))
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.4)
    raw = 3 + 1.2 * np.sum(taste[users] * style[items], axis=1) + rng.normal(0, 0.3, len(users))
    return Interactions.from_arrays(users, items, np.clip(np.rint(raw), 1, 5))


def split(data: Interactions, seed: int = 0) -> tuple[Interactions, Interactions]:
    order = np.random.default_rng(seed).permutation(len(data))
    cut = int(0.8 * len(data))
    return data.subset(order[:cut]), data.subset(order[cut:])


def rmse(model_scorer, train: Interactions, test: Interactions) -> float:
    users = np.unique(test.users)
    history = History.from_csr(train.to_csr(), users)
    predicted = model_scorer.predict(model_scorer.user_state(torch.as_tensor(users), history))
    rows = np.searchsorted(users, test.users)
    errors = predicted.numpy()[rows, test.items] - test.ratings
    return float(np.sqrt(np.mean(errors**2)))


def small(cls, **overrides):
    config = AutoRecConfig(hidden=32, l2=1.0, lr=0.01, epochs=60, batch_size=16, patience=None)
    return cls(config.with_overrides(overrides))


@pytest.mark.parametrize("cls", [IAutoRec, UAutoRec])
def test_beats_the_global_mean_on_structured_data(cls) -> None:
    train, test = split(synthetic_ratings())
    model = small(cls)
    report = model.fit(train)
    global_mean = float(np.sqrt(np.mean((test.ratings - train.ratings.mean()) ** 2)))
    assert report.history[-1].losses["loss"] < report.history[0].losses["loss"]
    assert rmse(model.to_scorer(), train, test) < 0.9 * global_mean


@pytest.mark.parametrize("cls", [IAutoRec, UAutoRec])
def test_fold_in_follows_the_unseen_users_history(cls) -> None:
    train, _ = split(synthetic_ratings())
    model = small(cls, epochs=20)
    model.fit(train)
    scorer = model.to_scorer()
    items = [[0, 1, 2, 3, 4, 5]]
    unknown = torch.tensor([-1])
    likes = scorer.user_state(unknown, History.from_lists(items, [[5.0] * 6], train.n_items))
    hates = scorer.user_state(unknown, History.from_lists(items, [[1.0] * 6], train.n_items))
    rated = torch.tensor(items[0])
    # Loving the rated items must raise their predictions over hating them.
    assert scorer.predict(likes, rated).mean() > scorer.predict(hates, rated).mean() + 0.5


def test_i_autorec_state_of_known_user_is_the_decoder_row() -> None:
    train, _ = split(synthetic_ratings())
    model = small(IAutoRec, epochs=5)
    model.fit(train)
    scorer = model.to_scorer()
    state = scorer.user_state(torch.tensor([3]), History.from_csr(train.to_csr(), np.array([3])))
    assert model.net is not None
    assert torch.allclose(state[0, :-1], model.net.decoder.weight[3])
    assert torch.allclose(state[0, -1], model.net.decoder.bias[3])
    # A user with no history at all is the average training user, not zeros.
    empty = scorer.user_state(torch.tensor([-1]), History.from_lists([[]], [[]], train.n_items))
    assert torch.allclose(empty[0], scorer.t["mean_user"], atol=1e-5)


def test_validation_selects_the_best_epoch() -> None:
    train, test = split(synthetic_ratings())
    model = small(IAutoRec, epochs=15)
    validation = Validation(
        lambda scorer: {"rmse": rmse(scorer, train, test)}, "rmse", higher_is_better=False
    )
    report = model.fit(train, validation)
    best = min(r.metrics["rmse"] for r in report.history)
    assert report.best_metrics["rmse"] == pytest.approx(best)
    assert rmse(model.to_scorer(), train, test) == pytest.approx(best, abs=1e-5)


def test_refuses_implicit_data_and_bad_settings() -> None:
    implicit = synthetic_ratings().binarize(None)
    with pytest.raises(ModelError, match="implicit"):
        small(IAutoRec).fit(implicit)
    with pytest.raises(ModelError, match="fold_in_l2"):
        small(IAutoRec, fold_in_l2=0.0).fit(synthetic_ratings())
    with pytest.raises(ModelError, match="not trained"):
        UAutoRec().to_scorer()
