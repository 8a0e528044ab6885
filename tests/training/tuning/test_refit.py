"""The winner's refit: a checked fit for the gate, then all the data for the validated epochs."""

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
)
from training.tuning.report import Entry

SMALL_DAE = {"hidden_dim": 20, "batch_size": 50, "epochs": 30, "patience": 3}


def test_validated_epochs_is_the_rounded_mean_of_the_recorded_best_epochs() -> None:
    assert validated_epochs([24, 31, None, 28]) == 28  # (24 + 31 + 28) / 3 = 27.67
    assert validated_epochs([None, 0]) is None  # nothing recorded: no count to fix
    assert validated_epochs([1]) == 1


def test_each_kind_of_model_has_its_plan() -> None:
    assert plan(model_class("mult-dae"), 12) == EPOCHS
    assert plan(model_class("i-autorec"), 12) == EPOCHS
    assert plan(model_class("ease"), None) == ONCE  # closed form: nothing to choose
    assert plan(model_class("popularity"), 1) == ONCE
    assert plan(model_class("irgan"), 12) == SLICE  # two phases: the slice picks both
    assert plan(model_class("mult-dae"), None) == SLICE  # no validated count recorded


def test_the_final_fit_runs_the_validated_epochs_on_every_record(
    ml100k_slice: Interactions,
) -> None:
    refit = refit_winner("mult-dae", SMALL_DAE, ml100k_slice, epochs=4)
    assert refit.plan == EPOCHS and refit.epochs == 4
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
    assert refit.record["data"] == "all" and refit.record["epochs"] == 4
    assert refit.record["checked_on_slice"] == refit.checked.holdout


def test_a_closed_form_winner_is_fitted_once_on_all_the_data(ml100k_slice: Interactions) -> None:
    final = final_fit("ease", {"l2": 200.0}, ml100k_slice, epochs=None)
    direct = train_model("ease", ml100k_slice, {"l2": 200.0}, holdout=0.0)
    checked = train_model("ease", ml100k_slice, {"l2": 200.0})
    weights = final.scorer.tensors()["b"].numpy()
    assert np.allclose(weights, direct.scorer.tensors()["b"].numpy())
    assert not np.allclose(weights, checked.scorer.tensors()["b"].numpy())  # it saw more


def test_a_model_whose_slice_picks_its_epochs_keeps_the_checked_fit(
    ml100k_slice: Interactions,
) -> None:
    with pytest.raises(ValueError, match="chosen on a held-out slice"):
        final_fit("mult-dae", SMALL_DAE, ml100k_slice, epochs=None)
    refit = refit_winner("mult-dae", {**SMALL_DAE, "epochs": 2}, ml100k_slice, epochs=None)
    assert refit.plan == SLICE and refit.final is refit.checked
    assert refit.to_save() is refit.checked and refit.record["data"] != "all"


def test_the_winner_s_epochs_average_its_trial_and_completed_folds() -> None:
    finalist = Finalist("mult-dae", 7, {}, 0.45, best_epoch=20)
    finalist.folds = [
        Fold(1, 1, 0.44, 3.0, best_epoch=30),
        Fold(2, 2, 0.40, 1.0, best_epoch=5, note=OUT_OF_TIME),  # stopped: not counted
        Fold(3, 3, None, 0.1, note="failed"),
    ]
    assert finalist.epochs == 25
    board = [Entry("mult-dae", 0.45, {}, 3.0, 7, 20, epochs=20)]
    assert rerank(board, [finalist])[0].epochs == 25
