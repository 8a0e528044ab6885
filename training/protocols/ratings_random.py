"""Rating prediction on a random 90/10 split — AutoRec (Sedhain et al. 2015) and CF-NADE
(Zheng et al. 2016) report RMSE this way on MovieLens.

* Split: ratings shuffled with the seed, 90% train / 10% test; 5% of the
  training part is carved out (with a derived seed) as validation for early
  stopping, so the model fits on 85.5% of the ratings.
* Metric: RMSE (and MAE) of ``Scorer.predict`` (clipped to the training
  rating range) on the 10%. A test pair whose user or item has no training
  rating is predicted ``default_rating`` (3, as the AutoRec authors' code);
  their number is reported as ``n_default``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from training.data.interactions import Interactions
from training.data.splits import random_split
from training.evaluate import evaluate_ratings, rating_validation
from training.models.base import EpochCallback
from training.protocols.common import (
    DataSpec,
    ProtocolError,
    check_options,
    dataset_name,
    fit_seed,
    load,
    option_float,
    require_rating_model,
    seed_run,
    sub_seed,
)
from training.protocols.report import ProtocolReport, SeedRun

NAME = "ratings-random"
HEADLINE = ["rmse", "mae"]
OPTIONS = {
    "test_fraction": "share of ratings held out for test (default 0.1)",
    "valid_fraction": "share of the training part carved out for early stopping (default 0.05)",
    "default_rating": "prediction for a pair with an unseen user or item (default 3)",
}


def explicit(data: Interactions, protocol: str) -> Interactions:
    if not data.explicit:
        raise ProtocolError(f"protocol '{protocol}' needs explicit ratings; the data has none")
    return data


def fit_and_rate(
    model_name: str,
    overrides: Mapping[str, str],
    seed: int,
    train_all: Interactions,
    test: Interactions,
    valid_fraction: float,
    default_rating: float,
    callbacks: list[EpochCallback] | None,
) -> SeedRun:
    """Carve validation out of ``train_all``, fit with early stopping on RMSE, rate ``test``."""
    train, valid = random_split(
        train_all, (1 - valid_fraction, valid_fraction), sub_seed(seed, "valid")
    )
    train_csr = train.to_csr()
    validation = rating_validation(train_csr, valid, "rmse", default_rating)
    scorer, report = fit_seed(model_name, overrides, seed, train, validation, callbacks)
    metrics = evaluate_ratings(scorer, train_csr, test, default_rating)
    return seed_run(seed, metrics, report)


def run(
    model_name: str,
    data_spec: DataSpec,
    *,
    seeds: list[int],
    overrides: Mapping[str, str] | None = None,
    data_dir: Path | str | None = None,
    callbacks: list[EpochCallback] | None = None,
    options: Mapping[str, str] | None = None,
) -> ProtocolReport:
    """RMSE on a fresh random 90/10 split per seed."""
    opts = check_options(NAME, options, OPTIONS)
    require_rating_model(model_name, NAME)
    data = explicit(load(data_spec, data_dir), NAME)
    test_fraction = option_float(opts, "test_fraction", 0.1)
    valid_fraction = option_float(opts, "valid_fraction", 0.05)
    default = option_float(opts, "default_rating", 3.0)
    runs = []
    for seed in seeds:
        train_all, test = random_split(data, (1 - test_fraction, test_fraction), seed)
        runs.append(
            fit_and_rate(
                model_name,
                overrides or {},
                seed,
                train_all,
                test,
                valid_fraction,
                default,
                callbacks,
            )
        )
    return ProtocolReport(
        NAME, model_name, dataset_name(data_spec), runs, HEADLINE, dict(overrides or {}), opts
    )
