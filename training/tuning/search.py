"""The search: one Optuna study over every candidate model, within a wall-clock budget.

``run_search`` is the one entry point, for the CLI now and for a worker job
later: it takes an Optuna storage URL (None: in memory) and a study name, so
several workers can share one study in a database, and it reports every
finished trial through ``on_trial``. The model is the study's first
(categorical) parameter and each model's settings are conditional on it
(``<model>.<setting>``), so TPE learns both which model and which settings.
Each candidate gets one trial first (enqueued) so none is starved.

The budget is honoured on an injected clock: after each trial the study
stops once the deadline has passed, and a fit still running at the deadline
is stopped at its next epoch (``pruning.EpochPruning``). No one fit may take
more than the budget divided by the number of candidates, so a slow model
cannot starve the others; a fit stopped for time counts with the best epoch
it reached. Only the winner's final refit (the CLI's) runs after the budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from sqlalchemy.exc import SQLAlchemyError

from training.data.interactions import Interactions
from training.models.base import ModelError
from training.tuning.candidates import choose_models
from training.tuning.errors import TuningError
from training.tuning.objective import Objective
from training.tuning.pruning import PerModelPruner
from training.tuning.report import Entry, TrialRecord, leaderboard, tuning_report
from training.tuning.split import tuning_split

#: A budget under this cannot fit even one trial of the fastest model plus its validation.
MIN_BUDGET_SECONDS = 30.0
#: Random trials before TPE models the space (per study, across models).
TPE_STARTUP_TRIALS = 5


@dataclass(frozen=True)
class SearchSettings:
    """What to search and for how long (all of it lands in the report)."""

    task: str
    models: Sequence[str] | None = None  # None: every model of the task (``candidates``)
    budget_seconds: float = 600.0
    max_trials: int | None = None
    split: str | None = None  # None: the task's default (``split.DEFAULT_SPLIT``)
    metric: str | None = None  # None: ndcg@100 / rmse
    seed: int = 0


@dataclass
class SearchResult:
    """The study, the per-trial records, the leaderboard and the report."""

    study: optuna.Study
    models: list[str]
    records: list[TrialRecord]
    board: list[Entry]
    report: dict[str, Any]

    @property
    def winner(self) -> Entry:
        return self.board[0]


def check_budget(budget_seconds: float, max_trials: int | None) -> None:
    """Refuse a budget or trial count that cannot run one trial (before any data is read)."""
    if budget_seconds < MIN_BUDGET_SECONDS:
        raise TuningError(
            f"a budget of {budget_seconds:.0f} s is too small for one trial; "
            f"give at least {MIN_BUDGET_SECONDS:.0f} s (--budget-minutes 0.5)"
        )
    if max_trials is not None and max_trials < 1:
        raise TuningError(f"--trials must be at least 1, got {max_trials}")


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """Optuna's RDB storage at ``url`` (None: in memory); a URL it cannot open is a
    ``TuningError`` that says so, not a driver traceback."""
    if url is None:
        return None
    try:
        return optuna.storages.RDBStorage(url)
    except (ImportError, ValueError, SQLAlchemyError) as exc:
        raise TuningError(f"cannot open the study storage {url!r}: {exc}") from exc


def run_search(
    data: Interactions,
    settings: SearchSettings,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    on_trial: Callable[[TrialRecord, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Search ``settings.models`` on a validation split of ``data``; see the module doc.

    ``on_trial(record, seconds_left)`` is called after every trial this
    process ran. Raises ``TuningError`` for bad input and when no trial
    finished within the budget.
    """
    check_budget(settings.budget_seconds, settings.max_trials)
    models = choose_models(settings.task, settings.models, data)
    split = tuning_split(data, settings.task, settings.split, settings.metric, settings.seed)
    validation = split.validation
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(
        storage=open_storage(storage),
        study_name=study_name,
        direction="maximize" if validation.higher_is_better else "minimize",
        sampler=optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=TPE_STARTUP_TRIALS),
        pruner=PerModelPruner(),
        load_if_exists=True,
    )
    if not study.trials:
        for model in models:
            study.enqueue_trial({"model": model})
    started = clock()
    deadline = started + settings.budget_seconds
    # No one fit may take more than its share of the budget, so every candidate gets a turn.
    trial_seconds = settings.budget_seconds / len(models)
    objective = Objective(models, split, clock, started, deadline, trial_seconds)

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(TrialRecord.from_trial(trial), max(0.0, deadline - clock()))
        if clock() >= deadline:
            study.stop()

    study.optimize(
        objective,
        n_trials=settings.max_trials,
        catch=(ModelError, RuntimeError),
        callbacks=[after_trial],
    )
    records = [
        TrialRecord.from_trial(t)
        for t in study.get_trials(deepcopy=False)
        if t.params.get("model") in models
    ]
    board = leaderboard(records, models, validation.higher_is_better)
    if not board or board[0].value is None:
        raise TuningError(
            "no trial finished within the budget; raise --budget-minutes or name faster --models"
        )
    report = tuning_report(
        task=settings.task,
        metric=validation.metric,
        higher_is_better=validation.higher_is_better,
        split=split.record,
        seed=settings.seed,
        budget_seconds=settings.budget_seconds,
        max_trials=settings.max_trials,
        seconds=clock() - started,
        study_name=study.study_name,
        board=board,
        records=records,
    )
    return SearchResult(study, models, records, board, report)
