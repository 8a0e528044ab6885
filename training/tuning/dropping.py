"""Which models leave a running search, and a sampler that no longer draws them.

Most models that cannot train on the operator's data never enter the search:
``candidates.screen`` runs each one's ``Model.check_data`` on the tuning split
first. Two kinds of failure can still show only in the trials:

* ``UnsuitableData`` raised by a fit (a data property the model's check does
  not cover): the objective writes the message on the trial (``UNFIT``) and
  the model is dropped at once, since no other settings can help;
* failures that depend on the settings (a diverging loss, too large a
  network): a model is dropped once ``FAILURES_TO_DROP`` of its trials have
  failed and none has trained (complete, or reported a validation figure). One
  that trained once stays, whatever fails later: it can train on this data,
  and its failures are a corner of its settings.

The rule reads only the study's trials, so every process sharing a study (a
tune job's workers) agrees on it without telling each other.

Optuna's TPE ignores failed trials: a model whose every trial failed looks
unexplored and TPE draws it *more* often (on all-equal ratings, CF-RBM had 12 of
30 trials, each failing at once). The study's categorical cannot change once
created, so ``DroppingSampler`` draws the model among the ones still searched:
TPE itself on a categorical of those, over the trials of those only. The value
is one of the study's choices, so the study's distribution stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

#: The study's parameter that names the model of a trial.
MODEL = "model"
#: User attribute of a trial whose fit found the data unsuitable (its message).
UNFIT = "unfit"
#: A model none of whose trials trained leaves the search after this many failures.
FAILURES_TO_DROP = 3


def dropped_models(trials: Iterable[FrozenTrial]) -> dict[str, str]:
    """Model -> why it left the search, read from ``trials`` (any process's)."""
    mine: dict[str, list[FrozenTrial]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.state.is_finished() and MODEL in trial.params:
            mine.setdefault(str(trial.params[MODEL]), []).append(trial)
    dropped: dict[str, str] = {}
    for model, done in mine.items():
        unfit = next((t.user_attrs[UNFIT] for t in done if UNFIT in t.user_attrs), None)
        if unfit is not None:
            dropped[model] = str(unfit)
            continue
        if any(t.state == TrialState.COMPLETE or t.intermediate_values for t in done):
            continue  # it trained: its failures depend on the settings
        failed = [t for t in done if t.state == TrialState.FAIL and "error" in t.user_attrs]
        if len(failed) >= FAILURES_TO_DROP:
            dropped[model] = (
                f"{len(failed)} trials failed and none trained "
                f"(the last: {failed[-1].user_attrs['error']})"
            )
    return dropped


class _WithoutModels:
    """A view of a study without the trials of some models, for the sampler's eyes only."""

    def __init__(self, study: optuna.Study, hidden: Sequence[str]) -> None:
        self._study, self._hidden = study, set(hidden)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _keep(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        return [t for t in trials if t.params.get(MODEL) not in self._hidden]

    def get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return self._keep(self._study.get_trials(*args, **kwargs))

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return self._keep(self._study._get_trials(*args, **kwargs))


class DroppingSampler(BaseSampler):
    """``base`` (TPE) for every parameter; the model drawn among those not dropped.

    ``out(study)`` names the models out of the search (``left_out`` up front, and
    ``dropped_models`` of the study's trials). ``base`` draws the model with the
    others' trials and a categorical of the models left; it may draw it with the
    others (multivariate TPE, Optuna's default: ``sample_relative``) or alone
    (``sample_independent``, e.g. while the first trials are random). When no
    model is left it draws as ``base`` would (the objective refuses the model and
    the search ends).
    """

    def __init__(self, base: BaseSampler, left_out: Mapping[str, str] | None = None) -> None:
        self.base = base
        self.left_out = dict(left_out or {})

    def out(self, study: optuna.Study) -> dict[str, str]:
        return {**self.left_out, **dropped_models(study.get_trials(deepcopy=False))}

    def _restrict(
        self, study: optuna.Study, dist: BaseDistribution | None
    ) -> tuple[optuna.Study, list[Any]] | None:
        """The study without the dropped models' trials and the models left, or None
        when nothing is to be restricted (no model dropped, or none left)."""
        if not isinstance(dist, CategoricalDistribution):
            return None
        out = self.out(study)
        dropped = [c for c in dist.choices if c in out]
        left = [c for c in dist.choices if c not in out]
        if not dropped or not left:
            return None
        return cast(optuna.Study, _WithoutModels(study, [str(c) for c in dropped])), left

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        restricted = self._restrict(study, search_space.get(MODEL))
        if restricted is None:
            return self.base.sample_relative(study, trial, search_space)
        view, left = restricted
        rest = {name: dist for name, dist in search_space.items() if name != MODEL}
        if len(left) == 1:
            return {
                **(self.base.sample_relative(view, trial, rest) if rest else {}),
                MODEL: left[0],
            }
        space = {**rest, MODEL: CategoricalDistribution(left)}
        return self.base.sample_relative(view, trial, space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        restricted = None if param_name != MODEL else self._restrict(study, param_distribution)
        if restricted is None:
            return self.base.sample_independent(study, trial, param_name, param_distribution)
        view, left = restricted
        if len(left) == 1:
            return left[0]
        remaining = CategoricalDistribution(left)
        return self.base.sample_independent(view, trial, param_name, remaining)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


def announce(
    seen: set[str], out: Mapping[str, str], on_drop: Callable[[str, str], None] | None
) -> None:
    """Call ``on_drop(model, why)`` for each model of ``out`` not in ``seen``; add it."""
    for model, why in out.items():
        if model not in seen:
            seen.add(model)
            if on_drop is not None:
                on_drop(model, why)
