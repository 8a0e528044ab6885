"""Every registered model declares a search space, and what it samples is a config it accepts."""

from __future__ import annotations

import optuna
import pytest

from training.models import REGISTRY
from training.models.common.search import (
    Choice,
    Fixed,
    Float,
    Int,
    SearchSpace,
    SearchSpaceError,
    only_if,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_model_declares_a_space_over_its_own_settings(name: str) -> None:
    cls = REGISTRY[name]
    space = getattr(cls, "search_space", None)
    assert isinstance(space, SearchSpace), f"{name} has no search_space"
    space.check_fields(cls.Config)  # raises on a name the Config does not have


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_sampled_settings_are_accepted_by_the_config(name: str) -> None:
    """Random trials of a real study: each sample goes through Config.with_overrides."""
    cls = REGISTRY[name]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(8):
        trial = study.ask()
        overrides = cls.search_space.sample(trial, prefix=f"{name}.")
        config = cls.Config().with_overrides(overrides)
        for key, value in overrides.items():
            assert getattr(config, key) == value
        cls(config)  # the model accepts it
        study.tell(trial, 0.0)
    searched = cls.search_space.searched
    if name != "popularity":
        assert searched, f"{name} searches nothing"
        assert set(study.trials[0].params) <= {f"{name}.{p}" for p in cls.search_space.params}


def test_popularity_has_nothing_to_search() -> None:
    assert REGISTRY["popularity"].search_space.searched == []


def test_fixed_trial_renders_each_kind() -> None:
    space = SearchSpace(
        lr=Float(1e-4, 1e-2, log=True),
        width=Int(10, 100),
        kind=Choice(("a", "b")),
        epochs=Fixed(7),
    )
    trial = optuna.trial.FixedTrial({"m.lr": 1e-3, "m.width": 50, "m.kind": "b"})
    assert space.sample(trial, prefix="m.") == {"lr": 1e-3, "width": 50, "kind": "b", "epochs": 7}


def test_conditional_parameter_is_sampled_only_under_its_condition() -> None:
    space = REGISTRY["pmf"].search_space
    base = {"pmf.factors": 10, "pmf.lambda_u": 1.0, "pmf.lambda_v": 1.0}
    off = space.sample(optuna.trial.FixedTrial({**base, "pmf.biases": False}), prefix="pmf.")
    on = space.sample(
        optuna.trial.FixedTrial({**base, "pmf.biases": True, "pmf.lambda_bias": 5.0}), prefix="pmf."
    )
    assert on["lambda_bias"] == 5.0
    assert "lambda_bias" not in off
    assert REGISTRY["pmf"].Config().with_overrides(off).lambda_bias is None


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: SearchSpace(x=Float(1.0, 1.0)), "below high"),
        (lambda: SearchSpace(x=Float(0.0, 1.0, log=True)), "low > 0"),
        (lambda: SearchSpace(x=Choice(())), "at least one option"),
        (lambda: SearchSpace(y=only_if(Int(1, 2), "x", 1), x=Int(1, 2)), "not declared before"),
    ],
)
def test_malformed_spaces_are_refused(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SearchSpaceError, match=message):
        build()


def test_a_space_naming_an_unknown_setting_is_refused() -> None:
    with pytest.raises(SearchSpaceError, match="no setting"):
        SearchSpace(not_a_setting=Int(1, 2)).check_fields(REGISTRY["ease"].Config)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_an_enqueued_first_trial_at_the_defaults_samples_the_defaults(name: str) -> None:
    """``defaults`` gives Optuna names and values every distribution accepts: a trial
    enqueued with them samples exactly the model's default settings."""
    cls = REGISTRY[name]
    first = cls.search_space.defaults(cls.Config(), prefix=f"{name}.")
    study = optuna.create_study()
    study.enqueue_trial(first)
    overrides = cls.search_space.sample(study.ask(), prefix=f"{name}.")
    defaults = cls.Config()
    for key, value in first.items():
        assert (
            overrides[key.removeprefix(f"{name}.")] == value == getattr(defaults, key.split(".")[1])
        )


def test_defaults_leave_out_values_outside_the_range_and_unmet_conditions() -> None:
    from dataclasses import dataclass

    @dataclass
    class Config:
        lr: float = 0.5  # outside its range: the sampler draws it
        width: int = 64
        layers: int = 1
        second: int = 32  # only searched with two layers

    space = SearchSpace(
        lr=Float(1e-4, 1e-1, log=True),
        width=Int(16, 128),
        layers=Choice((1, 2)),
        second=only_if(Int(8, 64), "layers", 2),
        epochs=Fixed(10),
    )
    assert space.defaults(Config(), "m.") == {"m.width": 64, "m.layers": 1}
    assert space.defaults(Config(layers=2), "m.") == {"m.width": 64, "m.layers": 2, "m.second": 32}
