"""One trial: pick a model, sample its settings from its own search space, fit, validate."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from training.models import model_class
from training.models.base import EpochCallback, ModelError, Scorer, UnsuitableData, Validation
from training.overall import overall_form
from training.segments import ByActivity
from training.tuning.candidates import training_rows
from training.tuning.dropping import MODEL, UNFIT, dropped_models
from training.tuning.pruning import BudgetSpent, EpochPruning
from training.tuning.split import TuningSplit

#: The trial attribute that holds the counted figure's per-segment validation.
BY_ACTIVITY = "by_activity"


class Objective:
    """Callable Optuna objective; every figure comes from the trainer's own validation.

    User attributes written on each trial (the report and the progress line
    read them): ``settings`` (the overrides, fixed values included),
    ``fit_seconds``, ``best_epoch``, ``lengths`` (the settings that replay the kept
    fit without validation, ``Model.replay_lengths``), ``elapsed`` (seconds since the search
    began, on the injected clock), ``stopped`` (why a fit ended early),
    ``error`` (why a trial failed), ``unfit`` (the fit found the data unsuitable:
    the model leaves the search, ``dropping``), and whatever ``attrs`` holds
    (``worker``). ``callbacks`` run after every epoch of every fit, after the
    pruning (e.g. a job's cancel check: what they raise fails the trial and ends
    the search). ``models`` are the study's choices of model; ``left_out`` those of
    them the search does not fit (``candidates.screen``), with why.
    """

    def __init__(
        self,
        models: Sequence[str],
        split: TuningSplit,
        clock: Callable[[], float],
        started: float,
        deadline: float,
        trial_seconds: float = float("inf"),
        attrs: Mapping[str, Any] | None = None,
        callbacks: Sequence[EpochCallback] = (),
        left_out: Mapping[str, str] | None = None,
    ) -> None:
        self.models = list(models)
        self.left_out = dict(left_out or {})
        self.split = split
        self.clock, self.started, self.deadline = clock, started, deadline
        self.trial_seconds = trial_seconds  # no one fit may take longer than this
        self.attrs = dict(attrs or {})  # written on every trial (e.g. which worker ran it)
        self.callbacks = list(callbacks)

    def __call__(self, trial: optuna.Trial) -> float:
        for key, value in self.attrs.items():
            trial.set_user_attr(key, value)
        name = trial.suggest_categorical(MODEL, self.models)
        out = {**self.left_out, **dropped_models(trial.study.get_trials(deepcopy=False))}
        if name in out:  # enqueued before it was dropped, or nothing else is left
            trial.set_user_attr("error", f"dropped from the search: {out[name]}")
            raise ModelError(f"{name} was dropped from the search: {out[name]}")
        cls = model_class(str(name))
        settings = cls.search_space.sample(trial, prefix=f"{name}.")
        trial.set_user_attr("settings", settings)
        metric = self.split.validation.metric
        earlier = _same_settings_done(trial, str(name), settings)
        if earlier is not None:  # e.g. popularity, which has nothing to search: no refit
            trial.set_user_attr("stopped", f"same settings as trial {earlier.number}: not refitted")
            for key in ("fit_seconds", "best_epoch", "lengths", BY_ACTIVITY):
                trial.set_user_attr(key, earlier.user_attrs.get(key))
            trial.set_user_attr("elapsed", round(self.clock() - self.started, 3))
            assert earlier.value is not None
            return float(earlier.value)
        t0 = self.clock()
        deadline = min(self.deadline, t0 + self.trial_seconds)
        higher = self.split.validation.higher_is_better
        pruning = EpochPruning(trial, metric, higher, self.clock, deadline)
        try:
            value, best_epoch, lengths, segments = validated_fit_by_activity(
                str(name), settings, self.split, pruning, self.callbacks
            )
        except (ModelError, RuntimeError) as exc:
            if isinstance(exc, UnsuitableData):  # no other settings can help: out it goes
                trial.set_user_attr(UNFIT, str(exc))
            trial.set_user_attr("error", str(exc))
            raise
        finally:
            trial.set_user_attr("fit_seconds", round(self.clock() - t0, 3))
            trial.set_user_attr("elapsed", round(self.clock() - self.started, 3))
        trial.set_user_attr("best_epoch", best_epoch)
        trial.set_user_attr("lengths", lengths)
        trial.set_user_attr(BY_ACTIVITY, None if segments is None else segments.to_dict())
        return value


def validated_fit_by_activity(
    name: str,
    settings: dict[str, Any],
    split: TuningSplit,
    pruning: EpochPruning,
    callbacks: Sequence[EpochCallback] = (),
) -> tuple[float, int | None, dict[str, int] | None, ByActivity | None]:
    """Fit ``name`` with ``settings`` on ``split``: its validation figure, best epoch,
    the length settings that replay it (``Model.replay_lengths``; None: none do), and
    that figure's validation per user-activity segment (None: the split's validation
    gives none). The segments come from the very evaluations the fit runs (``Recorder``),
    not from another pass.
    ``callbacks`` run after ``pruning`` at every epoch.

    A fit stopped for time (``BudgetSpent``) counts with the best epoch it
    reached; one stopped before any validation re-raises (nothing to count). A
    completed fit counts with its kept epoch's figure, or, for a model that changes
    after its last validated epoch (``Model.changes_after_validation``), with its
    scorer's figure measured once more.
    A fit with no finite figure is a ``ModelError``.
    """
    cls = model_class(name)
    metric = split.validation.metric
    model = cls(cls.Config().with_overrides(settings))
    recorder = Recorder(split.validation_for(name))  # a rating model: its ratings fold in
    try:
        rows = training_rows(name, split.train)  # a rating model: the ratings alone
        report = model.fit(rows, recorder.validation(), [pruning, *callbacks])
    except BudgetSpent:
        if pruning.best is None:
            raise  # stopped before any validation: nothing to count (pruned)
        reached, figure = pruning.best  # the best epoch it reached
        segments = recorder.find(lambda seen: seen.get(metric) == figure)
        return figure, reached, model.replay_lengths(reached), segments
    value = report.best_metrics.get(metric)
    segments = recorder.find(lambda seen: seen is report.best_metrics) or recorder.find(
        lambda seen: seen == report.best_metrics
    )
    if model.changes_after_validation:
        # The settings are ranked by the scorer a version of them would serve (and the
        # manifest records, ``training.pipeline.train_model``), not by the kept epoch's
        # figure: i-cf-nade's refit moved RMSE 0.8948 -> 0.8807 on ML-100K, which ranked
        # it below models its saved version beats.
        value = recorder.evaluate(model.to_scorer()).get(metric)
        segments = recorder.last()
    if value is None or not math.isfinite(value):
        raise ModelError(f"{name}: the fit gave no finite {metric} (got {value})")
    return float(value), report.best_epoch, model.replay_lengths(report.best_epoch), segments


validated_fit = overall_form(
    validated_fit_by_activity,
    lambda fit: fit[:3],  # value, best epoch, replay lengths: the segments left out
    "validated_fit",
    """``validated_fit_by_activity`` without the per-segment figures.""",
)


class Recorder:
    """The split's validation, keeping each evaluation's per-segment figures.

    A fit asks for the overall figures every validated epoch; asked through
    ``evaluate_by_activity`` instead, the same pass also gives the segments (a
    bincount), so the kept epoch's are known without a second evaluation.
    """

    def __init__(self, validation: Validation) -> None:
        self.inner = validation
        self.seen: list[tuple[dict[str, float], ByActivity]] = []

    def evaluate(self, scorer: Scorer) -> dict[str, float]:
        if self.inner.evaluate_by_activity is None:
            return self.inner.evaluate(scorer)
        metrics, segments = self.inner.evaluate_by_activity(scorer)
        self.seen.append((metrics, segments))
        return metrics

    def validation(self) -> Validation:
        """The validation to fit with: the split's, its evaluations recorded."""
        return dataclasses.replace(self.inner, evaluate=self.evaluate)

    def find(self, match: Callable[[dict[str, float]], bool]) -> ByActivity | None:
        """The segments of the latest evaluation whose overall figures ``match``."""
        return next((seg for metrics, seg in reversed(self.seen) if match(metrics)), None)

    def last(self) -> ByActivity | None:
        return self.seen[-1][1] if self.seen else None


def _same_settings_done(
    trial: optuna.Trial, model: str, settings: dict[str, Any]
) -> FrozenTrial | None:
    """An earlier complete trial of ``model`` with exactly these settings (fits are seeded)."""
    for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if done.params.get("model") == model and done.user_attrs.get("settings") == settings:
            return done
    return None
