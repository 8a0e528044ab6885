"""The finalists refitted on fresh validation splits, so the winner is not the luckiest draw.

One validation split of a small log is noisy. On ML-100K the top-k split
holds out 79 users, and the best trials of the top three models of a
20-minute search lay within 0.005 NDCG@100 of each other, less than the
split's own standard error (docs/tuning.md). Selecting on that one figure
picks, in part, whichever model the split happened to favour; and the best
of many trials of one model is biased upwards (the winner's curse), most for
the cheap models that get hundreds of trials.

So the last share of the budget (``CONFIRM_SHARE``) re-validates the
finalists: the best trial of each of the ``FINALISTS`` best models (when
fewer models finished a trial, the next best trials of those models fill
the places, so a one-model search confirms its top three) is fitted again,
with the same settings, on ``folds - 1`` more splits drawn with other
seeds (other held-out users for ``users``, other ratings for ``random``; the
same cut for ``time``, which has only one) and with another model seed, and
the winner is the best mean over its folds, the search's own figure
included. This is racing, as in the intensification step of SMAC (Hutter,
Hoos and Leyton-Brown 2011, "Sequential Model-Based Optimization for General
Algorithm Configuration", section 4.1): a configuration must keep its lead on
more instances before it is declared the incumbent.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from optuna.exceptions import TrialPruned

from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import ModelError
from training.tuning.objective import validated_fit
from training.tuning.pruning import EpochPruning
from training.tuning.refit import validated_epochs, validated_lengths
from training.tuning.report import Entry, TrialRecord
from training.tuning.split import TuningSplit, tuning_split

#: Share of the budget kept for re-validating the finalists (when confirmation is on).
CONFIRM_SHARE = 0.2
#: How many models' best trials are re-validated.
FINALISTS = 3
#: Folds per finalist by default (the search's split and two more), for budgets of at
#: least ``AUTO_MIN_BUDGET_SECONDS``; shorter budgets skip confirmation.
DEFAULT_FOLDS = 3
AUTO_MIN_BUDGET_SECONDS = 300.0
#: The most folds a run may ask for (``--confirm-folds``): each fold refits every finalist
#: within the last fifth of the budget, so more would only print folds stopped for time
#: (100,000 ran far past the budget, one "(out of time)" line per fit).
MAX_FOLDS = 20
#: The note of a fold fit stopped at its time share.
OUT_OF_TIME = "out of time"


def folds_for(budget_seconds: float, folds: int | None) -> int:
    """Validation folds per finalist: ``folds`` when given, else the default for the budget
    (1 means no confirmation: the search's own figure decides)."""
    if folds is not None:
        return folds
    return DEFAULT_FOLDS if budget_seconds >= AUTO_MIN_BUDGET_SECONDS else 1


@dataclass
class Fold:
    """One re-validation fit of a finalist."""

    split_seed: int | None  # None: the search's own split (``time`` keeps one cut)
    model_seed: int
    value: float | None  # None: the fit failed or was stopped before any validation
    fit_seconds: float
    best_epoch: int | None = None
    note: str | None = None
    lengths: dict[str, int] | None = None  # ``Model.replay_lengths`` of this fit


@dataclass
class Finalist:
    """A trial and its figures on every fold (the search's first)."""

    model: str
    trial: int | None
    settings: dict[str, Any]
    search_value: float
    folds: list[Fold] = field(default_factory=list)
    fit_seconds: float | None = None
    best_epoch: int | None = None
    search_lengths: dict[str, int] | None = None  # the search trial's replay lengths

    @classmethod
    def of(cls, record: TrialRecord) -> Finalist:
        """The complete trial ``record`` as a finalist, before any fold."""
        assert record.value is not None, "only complete trials reach the final"
        return cls(
            record.model,
            record.number,
            dict(record.settings),
            float(record.value),
            fit_seconds=record.fit_seconds,
            best_epoch=record.best_epoch,
            search_lengths=record.lengths,
        )

    @property
    def counted(self) -> list[Fold]:
        """The folds that ran to their end: a fit stopped for time measured fewer epochs
        than the settings ask for, so it is reported, not averaged."""
        return [f for f in self.folds if f.value is not None and f.note != OUT_OF_TIME]

    @property
    def values(self) -> list[float]:
        """The search's figure and every ``counted`` fold's."""
        return [self.search_value, *(float(f.value or 0.0) for f in self.counted)]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def epochs(self) -> int | None:
        """The epoch count its refit runs: the mean best epoch over the search's trial and
        the ``counted`` folds."""
        return validated_epochs([self.best_epoch, *(f.best_epoch for f in self.counted)])

    @property
    def lengths(self) -> dict[str, int] | None:
        """The length settings its all-data refit runs: each one's mean over the search's
        trial and the ``counted`` folds (``validated_lengths``)."""
        return validated_lengths([self.search_lengths, *(f.lengths for f in self.counted)])


def choose_finalists(
    board: list[Entry], records: list[TrialRecord], higher_is_better: bool
) -> list[Finalist]:
    """The best trial of each of the ``FINALISTS`` best models; fewer models than that:
    the next best complete trials of those models (distinct settings) fill the places."""
    by_number = {r.number: r for r in records}
    chosen = [by_number[e.trial] for e in board if e.trial is not None][:FINALISTS]
    models = {r.model for r in chosen}
    taken = {(r.model, repr(sorted(r.settings.items()))) for r in chosen}
    sign = -1.0 if higher_is_better else 1.0
    rest = sorted(
        (r for r in records if r.value is not None and r.model in models),
        key=lambda r: (sign * float(r.value or 0.0), r.number),
    )
    for r in rest:
        if len(chosen) >= FINALISTS:
            break
        key = (r.model, repr(sorted(r.settings.items())))
        if key not in taken:
            taken.add(key)
            chosen.append(r)
    return [Finalist.of(r) for r in chosen]


def confirm_finalists(
    data: Interactions,
    split: TuningSplit,
    finalists: list[Finalist],
    *,
    task: str,
    split_name: str | None,
    metric: str | None,
    seed: int,
    folds: int,
    seconds: float,
    clock: Callable[[], float] = time.monotonic,
    on_fold: Callable[[Finalist, Fold], None] | None = None,
) -> list[Finalist]:
    """Fit each of ``finalists`` (``choose_finalists``) on ``folds - 1`` more splits
    within ``seconds``; the finalists, best mean first (ties: the search's order).

    Folds run fold by fold (every finalist on fold 2, then on fold 3), and each
    fit may take a share of what is left in proportion to its trial's fit time
    (a closed-form fit takes a second, a VAE minutes), so when time runs short
    every finalist has had the same folds. A finalist whose fit fails keeps the
    folds it has (its mean is over those). No fold starts once ``seconds`` have
    passed: the fits of a fold begun in time are stopped at their next epoch.
    """
    higher = split.validation.higher_is_better
    if len(finalists) < 2 or folds < 2:
        return finalists
    deadline = clock() + seconds
    # Each fit's expected cost: its trial's fit time (at least a second).
    cost = [max(1.0, f.fit_seconds or 0.0) for f in finalists]
    cost_left = sum(cost) * (folds - 1)
    same_cut = split.record.get("kind") == "time"  # one cut only: vary the model seed
    for fold in range(1, folds):
        if clock() >= deadline:  # out of time: no fold would measure anything
            break
        split_seed = None if same_cut else seed + fold
        fold_split = (
            split if same_cut else tuning_split(data, task, split_name, metric, seed + fold)
        )
        for n, finalist in enumerate(finalists):
            share = max(0.0, deadline - clock()) * cost[n] / cost_left
            cost_left -= cost[n]
            result = _fit(finalist, fold_split, split_seed, fold, clock, clock() + share)
            finalist.folds.append(result)
            if on_fold is not None:
                on_fold(finalist, result)
    sign = -1.0 if higher else 1.0
    order = {id(f): n for n, f in enumerate(finalists)}
    return sorted(finalists, key=lambda f: (sign * f.mean, order[id(f)]))


def _fit(
    finalist: Finalist,
    split: TuningSplit,
    split_seed: int | None,
    fold: int,
    clock: Callable[[], float],
    deadline: float,
) -> Fold:
    """One fit of ``finalist`` on ``split`` with the model seed moved by ``fold``."""
    cls = model_class(finalist.model)
    model_seed = int(cls.Config().with_overrides(finalist.settings).seed) + fold
    settings = {**finalist.settings, "seed": model_seed}
    validation = split.validation
    pruning = EpochPruning(None, validation.metric, validation.higher_is_better, clock, deadline)
    t0 = clock()
    try:
        value, epoch, lengths = validated_fit(finalist.model, settings, split, pruning)
    except TrialPruned:  # out of time before its first validation
        return Fold(split_seed, model_seed, None, clock() - t0, note=OUT_OF_TIME)
    except (ModelError, RuntimeError) as exc:
        return Fold(split_seed, model_seed, None, clock() - t0, note=str(exc))
    stopped = OUT_OF_TIME if clock() >= deadline and pruning.best is not None else None
    return Fold(split_seed, model_seed, value, round(clock() - t0, 3), epoch, stopped, lengths)


def fold_line(finalist: Finalist, fold: Fold) -> str:
    """The progress line of one confirmation fit (CLI, job log, benchmark alike)."""
    value = "-" if fold.value is None else f"{fold.value:.4f}"
    note = f" ({fold.note})" if fold.note else ""
    return (
        f"confirm {finalist.model}: fold {len(finalist.folds) + 1} {value}"
        f" fit {fold.fit_seconds:.1f}s, mean {finalist.mean:.4f}{note}"
    )


def rerank(board: list[Entry], finalists: list[Finalist]) -> list[Entry]:
    """The leaderboard with the finalists' models first, in their confirmed order; a
    model's row becomes its best-confirmed finalist (which need not be its best trial)."""
    if not finalists or all(not f.folds for f in finalists):
        return board
    by_model = {e.model: e for e in board}
    first: list[Entry] = []
    for f in finalists:  # best mean first: a model's first finalist is its best
        if any(e.model == f.model for e in first):
            continue
        first.append(
            replace(
                by_model[f.model],
                value=f.search_value,
                settings=dict(f.settings),
                trial=f.trial,
                fit_seconds=f.fit_seconds,
                best_epoch=f.best_epoch,
                confirmed=round(f.mean, 6),
                epochs=f.epochs,
                lengths=f.lengths,
            )
        )
    named = {e.model for e in first}
    return first + [e for e in board if e.model not in named]


def confirmation_record(finalists: list[Finalist], folds: int, seconds: float) -> dict[str, Any]:
    """The report's ``confirmation``: each finalist's figures per fold and their mean."""
    return {
        "folds": folds,
        "seconds": round(seconds, 3),
        "method": "racing: finalists refitted on more validation splits, best mean wins",
        "finalists": [
            {
                "model": f.model,
                "trial": f.trial,
                "search_value": f.search_value,
                "best_epoch": f.best_epoch,
                "folds": [vars(fold) for fold in f.folds],
                "mean": round(f.mean, 6),
                "epochs": f.epochs,
                "lengths": f.lengths,
            }
            for f in finalists
        ],
    }
