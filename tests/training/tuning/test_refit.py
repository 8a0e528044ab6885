"""The winner's refit: a checked fit for the gate, then all the data for the validated lengths."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.interactions import Interactions
from training.models import model_class
from training.pipeline import train_model
from training.tuning.confirm import OUT_OF_TIME, Finalist, Fold, rerank
from training.tuning.refit import (
    EPOCHS,
    ONCE,
    SLICE,
    final_fit,
    plan,
    refit_winner,
    validated_epochs,
    validated_lengths,
)
from training.tuning.report import Entry

SMALL_DAE = {"hidden_dim": 20, "batch_size": 50, "epochs": 30, "patience": 3}


def test_validated_epochs_is_the_rounded_mean_of_the_recorded_best_epochs() -> None:
    assert validated_epochs([24, 31, None, 28]) == 28  # (24 + 31 + 28) / 3 = 27.67
    assert validated_epochs([None, 0]) is None  # nothing recorded: no count to fix
    assert validated_epochs([1]) == 1


def test_validated_lengths_average_each_setting_over_the_fits_that_recorded_it() -> None:
    assert validated_lengths([{"epochs": 24}, None, {"epochs": 31}]) == {"epochs": 28}
    irgan = [
        {"pretrain_epochs": 40, "game_epochs": 20},
        {"pretrain_epochs": 44, "game_epochs": 0},  # the game did not help on this fold
        {"pretrain_epochs": 45, "game_epochs": 10},
    ]
    assert validated_lengths(irgan) == {"pretrain_epochs": 43, "game_epochs": 10}
    assert validated_lengths([None, None]) is None


def test_each_kind_of_model_has_its_plan() -> None:
    assert plan(model_class("mult-dae"), {"epochs": 12}) == EPOCHS
    assert plan(model_class("i-autorec"), {"epochs": 12}) == EPOCHS
    assert plan(model_class("ease"), None) == ONCE  # closed form: nothing to choose
    assert plan(model_class("popularity"), {"epochs": 1}) == ONCE
    # Two phases, each with its own replayed count.
    assert plan(model_class("irgan"), {"pretrain_epochs": 30, "game_epochs": 5}) == EPOCHS
    assert plan(model_class("irgan"), None) == SLICE  # no fit recorded its lengths
    assert plan(model_class("mult-dae"), None) == SLICE  # no validated count recorded


def test_every_epoch_loop_model_replays_its_best_epoch_as_epochs() -> None:
    for name in ("mult-dae", "mult-vae", "i-autorec", "cf-nade", "bpr-mf", "biased-mf"):
        assert model_class(name)().replay_lengths(17) == {"epochs": 17}, name
        assert model_class(name)().replay_lengths(0) is None, name  # nothing was kept


def test_the_final_fit_runs_the_validated_epochs_on_every_record(
    ml100k_slice: Interactions,
) -> None:
    refit = refit_winner("mult-dae", SMALL_DAE, ml100k_slice, lengths={"epochs": 4})
    assert refit.plan == EPOCHS and refit.lengths == {"epochs": 4}
    # The checked fit holds the 10% per-user slice out, and it picks its epoch.
    assert refit.checked.holdout is not None and refit.checked.holdout["fraction"] == 0.1
    assert refit.checked.metrics and refit.checked.metric == "ndcg@10"
    # The final one: every record, exactly the validated count, no early stopping.
    final = refit.final
    assert final.holdout is None and final.report.epochs_run == 4 == final.report.best_epoch
    assert final.model.config.epochs == 4
    saved = refit.to_save()
    assert saved.model is final.model and saved.holdout is None
    assert saved.metrics == refit.checked.metrics and saved.metric == "ndcg@10"
    assert saved.by_activity is not None and saved.by_activity == refit.checked.by_activity
    assert refit.record["data"] == "all" and refit.record["lengths"] == {"epochs": 4}
    assert refit.record["checked_on_slice"] == refit.checked.holdout


def test_a_closed_form_winner_is_fitted_once_on_all_the_data(ml100k_slice: Interactions) -> None:
    final = final_fit("ease", {"l2": 200.0}, ml100k_slice, lengths=None)
    direct = train_model("ease", ml100k_slice, {"l2": 200.0}, holdout=0.0)
    checked = train_model("ease", ml100k_slice, {"l2": 200.0})
    weights = final.scorer.tensors()["b"].numpy()
    assert np.allclose(weights, direct.scorer.tensors()["b"].numpy())
    assert not np.allclose(weights, checked.scorer.tensors()["b"].numpy())  # it saw more


def test_a_model_whose_slice_picks_its_epochs_keeps_the_checked_fit(
    ml100k_slice: Interactions,
) -> None:
    with pytest.raises(ValueError, match="chosen on a held-out slice"):
        final_fit("mult-dae", SMALL_DAE, ml100k_slice, lengths=None)
    refit = refit_winner("mult-dae", {**SMALL_DAE, "epochs": 2}, ml100k_slice, lengths=None)
    assert refit.plan == SLICE and refit.final is refit.checked
    assert refit.to_save() is refit.checked and refit.record["data"] != "all"


def test_the_winner_s_epochs_average_its_trial_and_completed_folds() -> None:
    finalist = Finalist("mult-dae", 7, {}, 0.45, best_epoch=20, search_lengths={"epochs": 20})
    finalist.folds = [
        Fold(1, 1, 0.44, 3.0, best_epoch=30, lengths={"epochs": 30}),
        # stopped: not counted
        Fold(2, 2, 0.40, 1.0, best_epoch=5, note=OUT_OF_TIME, lengths={"epochs": 5}),
        Fold(3, 3, None, 0.1, note="failed"),
    ]
    assert finalist.epochs == 25 and finalist.lengths == {"epochs": 25}
    board = [Entry("mult-dae", 0.45, {}, 3.0, 7, 20, epochs=20, lengths={"epochs": 20})]
    assert rerank(board, [finalist])[0].lengths == {"epochs": 25}
