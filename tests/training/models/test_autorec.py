"""I-AutoRec and U-AutoRec: learn structure, fold in unseen users, refuse bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.models.rating_data import rmse, split, synthetic_ratings
from training.models.autorec import AutoRecConfig, IAutoRec, UAutoRec
from training.models.base import History, ModelError, Validation
from training.models.popularity import Popularity


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


def test_refuses_implicit_data_for_the_observed_only_loss_and_bad_settings() -> None:
    implicit = synthetic_ratings().binarize(None)
    with pytest.raises(ModelError, match="implicit"):
        small(IAutoRec, all_entries=False).fit(implicit)
    with pytest.raises(ModelError, match="fold_in_l2"):
        small(IAutoRec, fold_in_l2=0.0).fit(synthetic_ratings())
    with pytest.raises(ModelError, match="not trained"):
        UAutoRec().to_scorer()


@pytest.mark.parametrize("cls", [IAutoRec, UAutoRec])
def test_implicit_data_trains_on_every_entry_and_ranks_held_out_clicks(
    cls, structured, hit_rate
) -> None:
    """Clicks only: unobserved entries are 0 targets, so the model learns who clicks what."""
    train, heldout = structured.train.binarize(None), structured.heldout.binarize(None)
    model = small(cls, epochs=80)
    report = model.fit(train)
    assert report.history[-1].losses["loss"] < report.history[0].losses["loss"]
    scorer = model.to_scorer()
    assert scorer.config["all_entries"] is True
    # Popularity knows which items are popular, not which group a user is in.
    popularity = Popularity()
    popularity.fit(train)
    baseline = hit_rate(popularity.to_scorer(), train, heldout, 5)
    assert hit_rate(scorer, train, heldout, 5) > baseline + 0.05


def test_i_autorec_implicit_fold_in_regresses_on_every_item() -> None:
    """The fold-in targets are the user's clicks and 0 for every other item, as in training."""
    train = synthetic_ratings().binarize(None)
    model = small(IAutoRec, epochs=30)
    model.fit(train)
    scorer = model.to_scorer()
    history = History.from_lists([[0, 1, 2]], [[1.0, 1.0, 1.0]], train.n_items)
    state = scorer.user_state(torch.tensor([-1]), history)
    codes = scorer.t["item_codes"]
    x = torch.cat([codes, torch.ones(len(codes), 1)], dim=1)
    target = torch.zeros(len(codes))
    target[[0, 1, 2]] = 1.0
    lam = float(scorer.config["fold_in_l2"])
    expected = torch.linalg.solve(
        x.T @ x + lam * torch.eye(x.shape[1]), x.T @ target + lam * scorer.t["mean_user"]
    )
    torch.testing.assert_close(state[0], expected)
