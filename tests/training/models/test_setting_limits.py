"""Every size setting has a largest value: a training job cannot ask to run "forever".

``{"epochs": 2**62}`` was queued by ``POST /admin/retrain`` (and taken by
``genrec train --set``) and held a worker for good; a width of ``2**40`` failed
only when its tensor was allocated. The bounds sit far above what the papers and
the search spaces use, so realistic settings pass.
"""

from __future__ import annotations

import dataclasses

import pytest

from training.models import REGISTRY
from training.models.base import ModelError
from training.models.common.search import Choice, Fixed, Int
from training.models.limits import LIMITS, MAX_INTEGER, limit_of

MODELS = sorted(REGISTRY)


def _int_fields(name: str) -> list[str]:
    config = REGISTRY[name].Config()
    return [
        f.name
        for f in dataclasses.fields(config)
        if isinstance(getattr(config, f.name), int)
        and not isinstance(getattr(config, f.name), bool)
    ]


@pytest.mark.parametrize("name", MODELS)
def test_one_past_the_limit_is_refused_and_the_limit_is_taken(name: str) -> None:
    config = REGISTRY[name].Config()
    for field in _int_fields(name):
        if field == "seed":  # bounded by numpy's generators: its own check
            continue
        limit = limit_of(field)
        with pytest.raises(ModelError, match=rf"^{field} must be at most {limit:,}, got "):
            config.with_overrides({field: limit + 1})
        try:  # the limit itself is no size error (another check may still refuse it)
            config.with_overrides({field: limit})
        except ModelError as exc:
            assert "at most" not in str(exc), exc


def test_realistic_settings_pass() -> None:
    REGISTRY["mult-vae"].Config().with_overrides(
        {"epochs": 10_000, "batch_size": 100_000, "hidden_dim": 4096, "latent_dim": 1024}
    )
    REGISTRY["bpr-mf"].Config().with_overrides({"dim": 1024, "epochs": "5000"})
    REGISTRY["convmf"].Config().with_overrides({"vocab_size": 1_000_000, "max_len": 10_000})


def test_a_list_setting_is_bounded_number_by_number() -> None:
    with pytest.raises(ModelError, match=r"^windows must be at most 100,000, got "):
        REGISTRY["convmf"].Config().with_overrides({"windows": f"3,{2**40}"})


@pytest.mark.parametrize("name", MODELS)
def test_defaults_and_search_spaces_fit_the_limits(name: str) -> None:
    """A search must never sample a value its own config refuses."""
    cls = REGISTRY[name]
    config = cls.Config()
    for field in _int_fields(name):
        assert getattr(config, field) <= limit_of(field)
    for field, param in cls.search_space.params.items():
        dist = param.dist
        values = (
            [dist.high]
            if isinstance(dist, Int)
            else list(dist.options)
            if isinstance(dist, Choice)
            else [dist.value]
            if isinstance(dist, Fixed)
            else []
        )
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool):
                assert value <= limit_of(field), (name, field, value)


def test_every_named_limit_names_a_setting_of_some_model() -> None:
    """A typo in the table would bound nothing."""
    known = {f.name for cls in REGISTRY.values() for f in dataclasses.fields(cls.Config)}
    assert set(LIMITS) <= known, sorted(set(LIMITS) - known)
    assert MAX_INTEGER == 2**31 - 1


def test_only_settings_that_size_no_job_fall_back_to_the_32_bit_bound() -> None:
    """cf-rbm's ``cd_steps`` (Gibbs steps per update, a step count like ``epochs``) and
    convmf's ``windows`` (a convolution window, words like ``max_len``) had no entry, so
    ``cd_steps=1,2000000000`` was taken: every batch ran two billion Gibbs steps, the
    "forever" job the limits are there to refuse. Whatever falls back to ``MAX_INTEGER``
    must size no job: the seed (its own range) and cf-nade's ``n_layers`` (1 or 2)."""
    unbounded = {
        f.name
        for cls in REGISTRY.values()
        for f in dataclasses.fields(cls.Config)
        if isinstance(getattr(cls.Config(), f.name), int | tuple)
        and not isinstance(getattr(cls.Config(), f.name), bool)
        and limit_of(f.name) == MAX_INTEGER
    }
    assert unbounded == {"seed", "n_layers"}, sorted(unbounded)
    with pytest.raises(ModelError, match=r"^cd_steps must be at most 10,000, got 2000000000$"):
        REGISTRY["cf-rbm"].Config().with_overrides({"cd_steps": "1,2000000000"})
    with pytest.raises(ModelError, match=r"^windows must be at most 100,000, got 100001$"):
        REGISTRY["convmf"].Config().with_overrides({"windows": "3,100001"})
    REGISTRY["cf-rbm"].Config().with_overrides({"cd_steps": "1,3,5,10000"})
