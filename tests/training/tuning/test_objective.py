"""A trial is measured on the scorer a version of its settings would serve: for i-cf-nade,
whose ``to_scorer`` re-fits every user's rows after the last validated epoch, that is not
the kept epoch's figure."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.training.tuning.ml100k_slice import write_slice
from training.data.datasets import load_dataset
from training.models import model_class
from training.tuning.objective import validated_fit
from training.tuning.pruning import EpochPruning
from training.tuning.split import tuning_split

SETTINGS = {"hidden": 8, "epochs": 1, "fold_in_steps": 5}


def _pruning(metric: str) -> EpochPruning:
    return EpochPruning(None, metric, False, lambda: 0.0, math.inf)


def test_a_trial_of_i_cf_nade_counts_with_its_served_scorer(data_dir: Path, tmp_path: Path) -> None:
    data = load_dataset(str(write_slice(data_dir, tmp_path / "ml100k-60.csv", n_users=60)))
    split = tuning_split(data, "ratings", None, None, seed=0)
    metric = split.validation.metric
    settings = dict(SETTINGS)
    value, epoch, _ = validated_fit("i-cf-nade", settings, split, _pruning(metric))

    cls = model_class("i-cf-nade")
    twin = cls(cls.Config().with_overrides(settings))  # the same seeded fit, once more
    report = twin.fit(split.train, split.validation)
    served = split.validation.evaluate(twin.to_scorer())[metric]
    assert epoch == report.best_epoch
    assert value == pytest.approx(served, rel=1e-6)
    # The refit moves the figure, so the test tells the two apart.
    assert abs(report.best_metrics[metric] - served) > 1e-4
    assert twin.changes_after_validation
    assert not cls(
        cls.Config().with_overrides({**settings, "refit_users": False})
    ).changes_after_validation
