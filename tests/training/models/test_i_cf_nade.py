"""I-CF-NADE: learns structure, fits new users' rows to their ratings, stays a NADE of items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.models.rating_data import rmse, split, synthetic_ratings
from training.data.interactions import Interactions
from training.models.base import History, ModelError
from training.models.cf_nade import CFNADE, CFNADEConfig
from training.models.i_cf_nade import ICFNADE, ICFNADEConfig, transposed


def small(**overrides) -> ICFNADE:
    config = ICFNADEConfig(hidden=32, lr=0.01, weight_decay=0.0, batch_size=16, epochs=40)
    return ICFNADE(config.with_overrides({"patience": None, **overrides}))


@pytest.mark.parametrize("overrides", [{}, {"n_layers": 2}, {"factored_rank": 8}])
def test_beats_the_global_mean_on_structured_data(overrides: dict) -> None:
    train, test = split(synthetic_ratings())
    model = small(**overrides)
    report = model.fit(train)
    global_mean = float(np.sqrt(np.mean((test.ratings - train.ratings.mean()) ** 2)))
    assert report.history[-1].losses["loss"] < report.history[0].losses["loss"]
    assert rmse(model.to_scorer(), train, test) < 0.9 * global_mean


def test_is_the_user_based_model_of_the_transposed_ratings() -> None:
    """Same seed, same settings: the item-based net is the user-based net on R^T."""
    train, _ = split(synthetic_ratings())
    settings = {"hidden": 16, "lr": 0.01, "batch_size": 16, "epochs": 3, "patience": None}
    item_based = ICFNADE(ICFNADEConfig().with_overrides(settings))
    item_based.fit(train)
    user_based = CFNADE(CFNADEConfig().with_overrides(settings))
    user_based.fit(transposed(train))
    assert item_based.net is not None and user_based.net is not None
    for (name, a), b in zip(
        item_based.net.state_dict().items(), user_based.net.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)


def test_scorer_tables_have_the_documented_shapes() -> None:
    train, _ = split(synthetic_ratings())
    model = small(epochs=2, hidden=12, refit_users=False)
    model.fit(train)
    t = model.to_scorer().t
    n_levels = len(np.unique(train.ratings))
    assert t["item_codes"].shape == (train.n_items, 13)
    torch.testing.assert_close(t["item_codes"][:, -1], torch.ones(train.n_items))
    assert t["user_rows"].shape == (train.n_users, n_levels, 13)
    torch.testing.assert_close(t["mean_user"], t["user_rows"].mean(dim=0))


def test_refitted_rows_are_the_fold_in_of_each_users_training_ratings() -> None:
    train, _ = split(synthetic_ratings())
    model = small(epochs=3, hidden=12)
    model.fit(train)
    scorer = model.to_scorer()
    users = torch.arange(5)
    history = History.from_csr(train.to_csr(), users.numpy())
    known = scorer.user_state(users, history)
    folded = scorer.user_state(torch.full((5,), -1), history)
    torch.testing.assert_close(known, folded)
    # Epoch selection saw the jointly trained rows; only the final scorer is refitted.
    joint = ICFNADE(model.config.with_overrides({"refit_users": False}))
    joint.fit(train)
    assert not torch.allclose(joint.to_scorer().t["user_rows"], scorer.t["user_rows"])


@pytest.mark.parametrize(("prior", "gap"), [(1.0, 1.0), (100.0, 0.2)])
def test_fold_in_fits_the_new_users_ratings(prior: float, gap: float) -> None:
    """Six ratings move a weak prior far and the (default) strong prior less, same direction."""
    train, _ = split(synthetic_ratings())
    model = small(epochs=20, fold_in_l2=prior)
    model.fit(train)
    scorer = model.to_scorer()
    items = [[0, 1, 2, 3, 4, 5]]
    unknown = torch.tensor([-1])
    likes = scorer.user_state(unknown, History.from_lists(items, [[5.0] * 6], train.n_items))
    hates = scorer.user_state(unknown, History.from_lists(items, [[1.0] * 6], train.n_items))
    rated = torch.tensor(items[0])
    assert scorer.predict(likes, rated).mean() > scorer.predict(hates, rated).mean() + gap
    # No history: the mean training user.
    empty = scorer.user_state(unknown, History.from_lists([[]], [[]], train.n_items))
    torch.testing.assert_close(empty[0], scorer.t["mean_user"].reshape(-1))


def test_fold_in_of_a_training_users_ratings_predicts_like_their_row() -> None:
    """Refitting a known user from their own ratings lands close to the trained row."""
    train, test = split(synthetic_ratings())
    model = small(epochs=30)
    model.fit(train)
    scorer = model.to_scorer()
    users = np.unique(test.users)[:20]
    history = History.from_csr(train.to_csr(), users)
    known = scorer.predict(scorer.user_state(torch.as_tensor(users), history))
    folded = scorer.predict(scorer.user_state(torch.full((len(users),), -1), history))
    rows = np.searchsorted(users, test.users[np.isin(test.users, users)])
    cols = test.items[np.isin(test.users, users)]
    truth = test.ratings[np.isin(test.users, users)]
    known_rmse = float(np.sqrt(np.mean((known.numpy()[rows, cols] - truth) ** 2)))
    folded_rmse = float(np.sqrt(np.mean((folded.numpy()[rows, cols] - truth) ** 2)))
    assert folded_rmse < known_rmse + 0.15


def test_bad_fold_in_settings_and_untrained_model_are_refused() -> None:
    with pytest.raises(ModelError, match="fold_in"):
        small(fold_in_steps=0).fit(split(synthetic_ratings())[0])
    with pytest.raises(ModelError, match="not trained"):
        small().to_scorer()


def test_implicit_data_is_refused() -> None:
    clicks = Interactions.from_arrays([0, 0, 1], [0, 1, 1])
    clicks = Interactions(
        clicks.users,
        clicks.items,
        clicks.ratings,
        clicks.timestamps,
        clicks.user_ids,
        clicks.item_ids,
        explicit=False,
    )
    with pytest.raises(ModelError, match="implicit"):
        small().fit(clicks)
