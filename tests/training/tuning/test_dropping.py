"""A model that cannot train on the data leaves the search, and the report says why.

Reproduced before the fix: on data whose ratings are all equal, ``--task
ratings`` spent 23 of 30 trials on CF-NADE, I-CF-NADE and CF-RBM, each failing
at once ("needs at least two distinct rating values"), because Optuna's TPE
ignores failed trials and kept drawing those models as unexplored.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from tests.manual_clock import ManualClock
from training.data.interactions import Interactions
from training.models.base import ModelError, UnsuitableData
from training.models.ease import EASE
from training.tuning import TuningError
from training.tuning.dropping import FAILURES_TO_DROP, DroppingSampler
from training.tuning.report import TrialRecord
from training.tuning.search import SearchSettings, open_search, run_search, search_trials

TWO_LEVELS = "needs at least two distinct rating values; got [4.0]"


@pytest.fixture(scope="module")
def all_equal(ml100k_slice: Interactions) -> Interactions:
    """The 150 real users' ratings, every one of them 4."""
    ratings = np.full(len(ml100k_slice), 4.0, dtype=np.float32)
    return dataclasses.replace(ml100k_slice, ratings=ratings)


def test_a_model_that_cannot_train_on_the_data_is_left_out_before_the_search(
    all_equal: Interactions,
) -> None:
    said: list[str] = []
    result = run_search(
        all_equal,
        SearchSettings(task="ratings", models=["cf-nade", "biased-mf"], max_trials=4),
        on_trial=lambda record, left: said.append(f"trial {record.number} {record.model}"),
        on_drop=lambda model, why: said.append(f"dropped {model}: {why}"),
        clock=ManualClock(0.0),
    )
    assert said[0] == f"dropped cf-nade: model 'cf-nade' {TWO_LEVELS}"  # before any trial
    assert said[1:] == [f"trial {n} biased-mf" for n in range(4)]  # no trial is spent on it
    assert result.models == ["biased-mf"]
    assert [e.model for e in result.board] == ["biased-mf"]
    assert result.report["dropped"] == {"cf-nade": f"model 'cf-nade' {TWO_LEVELS}"}
    assert result.report["trials"] == {"complete": 4}


def test_data_no_candidate_can_train_on_is_one_error_naming_each(all_equal: Interactions) -> None:
    with pytest.raises(TuningError) as caught:
        run_search(
            all_equal,
            SearchSettings(task="ratings", models=["cf-nade", "cf-rbm"], max_trials=4),
            clock=ManualClock(0.0),
        )
    assert str(caught.value) == (
        f"no candidate can train on this data: cf-nade: model 'cf-nade' {TWO_LEVELS}; "
        f"cf-rbm: model 'cf-rbm' {TWO_LEVELS}"
    )


def _search(
    data: Interactions, trials: int, models: tuple[str, ...] = ("popularity", "ease")
) -> tuple[list[TrialRecord], list[str], dict[str, object]]:
    seen: list[TrialRecord] = []
    dropped: list[str] = []
    result = run_search(
        data,
        SearchSettings(task="topk", models=list(models), max_trials=trials),
        on_trial=lambda record, left: seen.append(record),
        on_drop=lambda model, why: dropped.append(f"{model}: {why}"),
        clock=ManualClock(0.0),
    )
    return seen, dropped, result.report


def test_a_fit_that_finds_the_data_unsuitable_drops_its_model_at_once(
    ml100k_slice: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data property the model's check missed: its first failure is its last trial."""

    def unsuitable(*args: object, **kwargs: object) -> None:
        raise UnsuitableData("ease: no item is like another")

    monkeypatch.setattr(EASE, "fit", unsuitable)
    seen, dropped, report = _search(ml100k_slice, trials=8)
    assert [(r.model, r.state) for r in seen if r.model == "ease"] == [("ease", "failed")]
    assert len(seen) == 8 and all(r.model == "popularity" for r in seen[2:])
    assert dropped == ["ease: ease: no item is like another"]
    assert report["dropped"] == {"ease": "ease: no item is like another"}


def test_a_model_none_of_whose_trials_trained_leaves_after_its_third_failure(
    ml100k_slice: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    def diverges(*args: object, **kwargs: object) -> None:
        raise ModelError("ease: the fit gave no finite ndcg@100 (got nan)")

    monkeypatch.setattr(EASE, "fit", diverges)
    seen, dropped, report = _search(ml100k_slice, trials=12)
    assert [r.state for r in seen if r.model == "ease"] == ["failed"] * FAILURES_TO_DROP
    assert len(seen) == 12
    why = "3 trials failed and none trained (the last: ease: the fit gave no finite ndcg@100 (got nan))"
    assert dropped == [f"ease: {why}"] and report["dropped"] == {"ease": why}


def test_a_model_that_trained_once_is_never_dropped_for_its_failures(
    ml100k_slice: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    fit = EASE.fit
    calls: list[int] = []

    def fails_after_the_first(self: EASE, *args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) > 1:
            raise ModelError("ease: diverged at this λ")
        return fit(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(EASE, "fit", fails_after_the_first)
    seen, dropped, report = _search(ml100k_slice, trials=16, models=("ease",))
    states = [r.state for r in seen]
    assert states[0] == "complete" and states.count("failed") == 15
    assert dropped == [] and report["dropped"] == {}


def test_the_search_ends_when_every_model_is_dropped(
    ml100k_slice: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    def diverges(*args: object, **kwargs: object) -> None:
        raise ModelError("ease: diverged")

    monkeypatch.setattr(EASE, "fit", diverges)
    seen: list[TrialRecord] = []
    with pytest.raises(TuningError, match="no candidate can train on this data: ease: 3 trials"):
        run_search(
            ml100k_slice,
            SearchSettings(task="topk", models=["ease"], max_trials=50),
            on_trial=lambda record, left: seen.append(record),
            clock=ManualClock(0.0),
        )
    assert len(seen) == FAILURES_TO_DROP  # not 50: the search stopped once ease left


@pytest.mark.parametrize("startup", [2, 50])  # TPE's model of the trials; random draws
def test_the_sampler_draws_no_dropped_model_whatever_the_study_holds(startup: int) -> None:
    """TPE on the models still searched, over their trials only: a complete or running
    trial of a dropped model (another worker's) neither errs nor draws it again."""
    models = CategoricalDistribution(["a", "b", "c"])
    study = optuna.create_study(
        sampler=DroppingSampler(
            optuna.samplers.TPESampler(seed=0, n_startup_trials=startup, constant_liar=True),
            {"c": "c: no rating"},
        )
    )
    for n in range(12):
        model = "abc"[n % 3]
        study.add_trial(
            create_trial(params={"model": model}, distributions={"model": models}, value=float(n))
        )
    study.add_trial(
        create_trial(
            params={"model": "c"}, distributions={"model": models}, state=TrialState.RUNNING
        )
    )
    drawn = {study.ask({"model": models}).params["model"] for _ in range(40)}
    assert drawn == {"a", "b"}


def test_a_study_opened_again_keeps_its_model_choices(
    all_equal: Interactions, tmp_path: Path
) -> None:
    """A tune job's study created before its data changed (or before this check existed)
    was created with every candidate: its categorical cannot change, so the search
    samples from it and leaves the model out at the sampler."""
    storage = f"sqlite:///{tmp_path}/study.db"
    old = optuna.create_study(storage=storage, study_name="s", direction="minimize")
    choices = CategoricalDistribution(["biased-mf", "cf-nade"])
    old.add_trial(
        create_trial(params={"model": "biased-mf"}, distributions={"model": choices}, value=1.0)
    )
    search = open_search(
        all_equal,
        SearchSettings(task="ratings", models=["biased-mf", "cf-nade"], max_trials=4),
        storage=storage,
        study_name="s",
    )
    assert (search.models, search.choices) == (["biased-mf"], ["biased-mf", "cf-nade"])
    search_trials(search, clock=ManualClock(0.0))
    trials = search.study.get_trials(deepcopy=False)
    assert [t.params["model"] for t in trials] == ["biased-mf"] * 4
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE] * 3


def test_a_first_trial_enqueued_for_a_model_now_left_out_fails_without_a_fit(
    all_equal: Interactions, tmp_path: Path
) -> None:
    """A lead that enqueued the first trials and died before any ran: its retry finds a
    waiting trial of a model the check now leaves out. It fails at once, saying so."""
    storage = f"sqlite:///{tmp_path}/study.db"
    old = optuna.create_study(storage=storage, study_name="s", direction="minimize")
    old.enqueue_trial({"model": "cf-nade"})
    search = open_search(
        all_equal,
        SearchSettings(task="ratings", models=["biased-mf", "cf-nade"], max_trials=3),
        storage=storage,
        study_name="s",
    )
    assert search.choices == ["biased-mf", "cf-nade"]
    seen: list[TrialRecord] = []
    search_trials(search, clock=ManualClock(0.0), on_trial=lambda r, left: seen.append(r))
    assert [(r.model, r.state) for r in seen] == [
        ("cf-nade", "failed"),
        ("biased-mf", "complete"),
        ("biased-mf", "complete"),
    ]
    assert seen[0].note == f"dropped from the search: model 'cf-nade' {TWO_LEVELS}"
