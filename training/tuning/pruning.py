"""Pruning fed by the trainer's own per-epoch validation, and a pruner that compares like with like.

``EpochPruning`` is an ordinary epoch callback (``training.trainer`` calls it
after each validated epoch): it reports the figure to Optuna and stops the fit
by raising ``optuna.TrialPruned`` when the pruner says so, or when the
search's deadline has passed (so a long fit cannot overrun the budget).

``PerModelPruner`` wraps Optuna's percentile pruner so that a trial is compared
only with earlier trials *of the same model*: one study searches several
models, and an autoencoder's epoch 3 should not be judged against a
closed-form model's only figure.

It judges late and leniently (``WARMUP_EPOCHS``, ``KEEP_PERCENTILE``) because
that is what validation showed (docs/tuning.md, "How early can a trial be
judged"): forty random settings each of Mult-VAE, Mult-DAE and I-AutoRec
fitted to the end and replayed through the pruner
(``benchmarks/tune_pruning_check.py``). The median at epoch 3, the first
rule, killed the best of Mult-VAE's forty settings in 43 of 50 trial orders
(its learning-rate and annealing settings decide the early figures more
than where a fit ends); keeping the top three quarters from epoch 20 kept
it in 45 of 50 (Mult-DAE 40, I-AutoRec 39) while still spending about half
the time of fitting everything to the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.pruners import BasePruner, PercentilePruner
from optuna.trial import FrozenTrial, TrialState

from training.models.base import EpochReport


class BudgetSpent(optuna.TrialPruned):
    """The search's wall-clock budget ran out while this trial was fitting."""


class EpochPruning:
    """Epoch callback: report the selection metric to the trial; prune, or stop on time.

    ``deadline`` is the earlier of the search's end and this trial's own cap.
    When it passes, the fit stops at the next epoch with ``BudgetSpent``; the
    objective then keeps the best figure the trainer validated so far
    (``best``), so a long fit still counts with the epochs it reached.
    Without a ``trial`` (the finalists' refits, ``confirm``) it only keeps time.
    """

    def __init__(
        self,
        trial: optuna.Trial | None,
        metric: str,
        higher_is_better: bool,
        clock: Callable[[], float],
        deadline: float,
    ) -> None:
        self.trial, self.metric, self.higher_is_better = trial, metric, higher_is_better
        self.clock, self.deadline = clock, deadline
        self.best: tuple[int, float] | None = None  # (epoch, figure) of the best validation
        # Optuna's step of the last report. A model that trains in phases (IRGAN: pre-training,
        # then the game) restarts its epoch count; its later phases continue the steps, since
        # Optuna ignores (with a warning) a value reported again at a step it already has.
        self.step = 0
        self.offset = 0

    def __call__(self, report: EpochReport) -> None:
        if self.metric in report.metrics:
            value = float(report.metrics[self.metric])
            if self.best is None or (
                value > self.best[1] if self.higher_is_better else value < self.best[1]
            ):
                self.best = (report.epoch, value)
            if report.epoch + self.offset <= self.step:  # a new phase began at epoch 1
                self.offset = self.step
            self.step = report.epoch + self.offset
            if self.trial is not None:
                self.trial.report(value, step=self.step)
                if self.trial.should_prune():
                    self.trial.set_user_attr("stopped", f"pruned at epoch {report.epoch}")
                    raise optuna.TrialPruned(f"epoch {report.epoch}: {self.metric}={value:.4f}")
        if self.clock() >= self.deadline and report.epoch < report.epochs:
            if self.trial is not None:
                self.trial.set_user_attr("stopped", f"out of time at epoch {report.epoch}")
            raise BudgetSpent(f"out of time at epoch {report.epoch}")


class _SameModelTrials:
    """A view of a study that shows a pruner only the trials of one model."""

    def __init__(self, study: optuna.Study, model: Any) -> None:
        self._study, self._model = study, model

    @property
    def direction(self) -> optuna.study.StudyDirection:
        return self._study.direction

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = self._study.get_trials(deepcopy=deepcopy, states=states)
        return [t for t in trials if t.params.get("model") == self._model]


#: The first epoch at which a trial can be pruned.
WARMUP_EPOCHS = 20
#: A trial is kept while it is in this top percentile of its model's earlier trials at the
#: same epoch (Optuna's ``PercentilePruner``; 50 would be the median pruner).
KEEP_PERCENTILE = 75.0


class PerModelPruner(BasePruner):
    """Optuna's ``PercentilePruner`` restricted to trials of the same model."""

    def __init__(
        self,
        n_startup_trials: int = 2,
        n_warmup_steps: int = WARMUP_EPOCHS,
        percentile: float = KEEP_PERCENTILE,
    ) -> None:
        self.inner = PercentilePruner(
            percentile, n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
        )

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        view = _SameModelTrials(study, trial.params.get("model"))
        return self.inner.prune(view, trial)  # type: ignore[arg-type]
