"""Shared training settings: one help text each, models override defaults only."""

from __future__ import annotations

import dataclasses

from training.models import REGISTRY
from training.models.common import settings
from training.models.common.settings import EpochSettings, TrainingConfig

SHARED = {
    "device": settings.DEVICE_HELP,
    "epochs": settings.EPOCHS_HELP,
    "patience": settings.PATIENCE_HELP,
    "lr": settings.LR_HELP,
    "validate_every": settings.VALIDATE_EVERY_HELP,
}


def test_every_model_that_has_a_shared_setting_describes_it_with_the_one_help() -> None:
    for name, cls in REGISTRY.items():
        described = cls.Config.describe()
        for key, help_text in SHARED.items():
            if key in described:
                assert described[key].startswith(help_text), (name, key, described[key])
        if "batch_size" in described:
            assert issubclass(cls.Config, TrainingConfig), name
            unit = cls.Config.batch_unit
            assert described["batch_size"].startswith(f"{unit} per optimiser step"), name
            assert "{" not in described["batch_size"]


def test_iterative_models_share_the_bases_and_keep_their_defaults() -> None:
    defaults = {
        name: {f.name: f.default for f in dataclasses.fields(cls.Config)}
        for name, cls in REGISTRY.items()
    }
    # spot checks against the defaults the models had before the shared base
    assert defaults["bpr-mf"]["lr"] == 2e-3 and defaults["biased-mf"]["lr"] == 0.005
    assert defaults["mult-vae"]["batch_size"] == 500 and defaults["mult-vae"]["epochs"] == 200
    assert defaults["i-cf-nade"]["lr"] == 5e-4 and defaults["cf-nade"]["lr"] == 1e-3
    assert defaults["pmf"]["epochs"] == 30 and "lr" not in defaults["pmf"]
    assert "epochs" not in defaults["irgan"] and "patience" in defaults["irgan"]
    for name, cls in REGISTRY.items():
        if "epochs" in defaults[name]:
            assert issubclass(cls.Config, EpochSettings), name
        if name != "popularity":
            assert defaults[name]["device"] == "cpu", name


def test_every_setting_has_help() -> None:
    for name, cls in REGISTRY.items():
        for key, text in cls.Config.describe().items():
            assert not text.startswith(" (default"), (name, key)
