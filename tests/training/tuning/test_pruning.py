"""Pruning is fed by the trainer's per-epoch validation and compares a trial with its own model."""

from __future__ import annotations

import optuna
import pytest

from tests.manual_clock import ManualClock
from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import EpochReport
from training.tuning.pruning import BudgetSpent, EpochPruning, PerModelPruner
from training.tuning.split import tuning_split

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study() -> optuna.Study:
    return optuna.create_study(
        direction="maximize", pruner=PerModelPruner(n_startup_trials=1, n_warmup_steps=0)
    )


MODELS = optuna.distributions.CategoricalDistribution(["a", "other", "biased-mf"])


def _trial_of(study: optuna.Study, model: str) -> optuna.Trial:
    """A running trial whose ``model`` parameter is ``model`` (as the objective suggests it)."""
    study.enqueue_trial({"model": model})
    trial = study.ask()
    assert trial.suggest_categorical("model", list(MODELS.choices)) == model
    return trial


def _finished(study: optuna.Study, model: str, values: list[float]) -> None:
    """A completed trial of ``model`` that reported ``values`` at epochs 1, 2, ..."""
    study.add_trial(
        optuna.trial.create_trial(
            params={"model": model},
            distributions={"model": MODELS},
            value=values[-1],
            intermediate_values=dict(enumerate(values, start=1)),
        )
    )


def test_a_trial_worse_than_its_models_median_is_pruned() -> None:
    study = _study()
    _finished(study, "a", [0.5, 0.5, 0.5])
    better = _trial_of(study, "a")
    EpochPruning(better, "ndcg@100", True, ManualClock(0.0), deadline=100.0)(
        EpochReport(1, 10, {}, {"ndcg@100": 0.6}, 0.1, True)
    )  # above the median: kept
    study.tell(better, 0.6)
    trial = _trial_of(study, "a")
    callback = EpochPruning(trial, "ndcg@100", True, ManualClock(0.0), deadline=100.0)
    with pytest.raises(optuna.TrialPruned):
        callback(EpochReport(2, 10, {}, {"ndcg@100": 0.1}, 0.1, False))
    assert "pruned at epoch 2" in study.trials[-1].user_attrs["stopped"]


def test_another_models_trials_are_not_the_yardstick() -> None:
    study = _study()
    _finished(study, "a", [0.9])
    trial = _trial_of(study, "other")  # no earlier trial of its own model: nothing to prune by
    EpochPruning(trial, "ndcg@100", True, ManualClock(0.0), deadline=100.0)(
        EpochReport(1, 10, {}, {"ndcg@100": 0.01}, 0.1, True)
    )


def test_a_second_training_phase_continues_the_steps(recwarn: pytest.WarningsRecorder) -> None:
    """IRGAN counts epochs from 1 again for its game after pre-training; every figure counts."""
    study = _study()
    trial = _trial_of(study, "a")
    callback = EpochPruning(trial, "ndcg@100", True, ManualClock(0.0), deadline=100.0)
    for epoch, value in [(1, 0.1), (2, 0.2), (3, 0.3), (1, 0.35), (2, 0.4)]:
        callback(EpochReport(epoch, 3, {}, {"ndcg@100": value}, 0.1, True))
    study.tell(trial, 0.4)
    assert study.trials[-1].intermediate_values == {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.35, 5: 0.4}
    assert not [w for w in recwarn if "already reported" in str(w.message)]


def test_the_deadline_stops_a_running_fit_at_its_next_epoch() -> None:
    study = _study()
    clock = ManualClock(0.0)
    callback = EpochPruning(_trial_of(study, "a"), "rmse", False, clock, deadline=10.0)
    callback(EpochReport(1, 5, {}, {"rmse": 1.0}, 0.1, True))
    clock.advance(10.0)
    with pytest.raises(BudgetSpent, match="out of time at epoch 2"):
        callback(EpochReport(2, 5, {}, {"rmse": 1.1}, 0.1, False))
    assert callback.best == (1, 1.0)  # what the objective keeps: the best validated epoch
    callback(EpochReport(5, 5, {}, {"rmse": 0.9}, 0.1, True))  # the last epoch ends the fit anyway


def test_a_real_fit_is_pruned_by_the_callback(ml100k_slice: Interactions) -> None:
    """Biased MF on real data against a trial of the same model that reported RMSE 0.1."""
    split = tuning_split(ml100k_slice, "ratings", None, None, seed=0)
    study = optuna.create_study(
        direction="minimize", pruner=PerModelPruner(n_startup_trials=1, n_warmup_steps=0)
    )
    _finished(study, "biased-mf", [0.1] * 10)  # an impossibly good earlier run
    trial = _trial_of(study, "biased-mf")
    cls = model_class("biased-mf")
    model = cls(cls.Config().with_overrides({"epochs": 10, "factors": 8}))
    seen: list[int] = []
    with pytest.raises(optuna.TrialPruned):
        model.fit(
            split.train,
            split.validation,
            [
                lambda r: seen.append(r.epoch),
                EpochPruning(trial, "rmse", False, ManualClock(0.0), 1e9),
            ],
        )
    assert seen == [1]  # stopped at the first validated epoch, not after ten
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert study.trials[-1].state == optuna.trial.TrialState.PRUNED
    assert study.trials[-1].intermediate_values[1] > 0.1


def test_by_default_a_trial_is_judged_from_epoch_20_and_kept_in_its_models_top_three_quarters() -> (
    None
):
    """The defaults docs/tuning.md chose on validation: a slow starter survives its first
    nineteen epochs, and later only a trial below three quarters of its model's earlier ones
    (at the same epoch) is pruned."""
    study = optuna.create_study(direction="maximize", pruner=PerModelPruner())
    for top in (0.1, 0.2, 0.3, 0.4, 0.5):
        _finished(study, "a", [top] * 25)
    slow = _trial_of(study, "a")
    pruning = EpochPruning(slow, "ndcg@100", True, ManualClock(0.0), deadline=100.0)
    for epoch in range(1, 20):  # far below every earlier trial, but still warming up
        pruning(EpochReport(epoch, 25, {}, {"ndcg@100": 0.01}, 0.1, False))
    with pytest.raises(optuna.TrialPruned):
        pruning(EpochReport(20, 25, {}, {"ndcg@100": 0.01}, 0.1, False))
    study.tell(slow, state=optuna.trial.TrialState.PRUNED)
    fair = _trial_of(study, "a")
    pruning = EpochPruning(fair, "ndcg@100", True, ManualClock(0.0), deadline=100.0)
    for epoch in range(1, 26):  # above the 25th percentile of 0.1..0.5 (0.2), below the median
        pruning(EpochReport(epoch, 25, {}, {"ndcg@100": 0.25}, 0.1, False))
