"""ConvMF's rating protocol — Kim, Park, Oh, Lee & Yu, RecSys 2016, Sec. 4.1-4.3.

* Split: 80% train / 10% validation / 10% test at random, the training part
  holding at least one rating of every user and item (the authors'
  ``data_manager.py`` puts one rating per user and per item in training first).
* ``train_fraction`` < 1 keeps that random share of the training part (the
  paper's sparser-data experiment, 0.2 / 0.4 / 0.6 / 0.8); validation and test
  stay as they are.
* The model is kept at the best validation RMSE; test RMSE (and MAE). A pair
  whose user has no training rating is predicted ``default_rating`` (3); a pair
  whose item has none too, unless ``predict_cold_items`` (ConvMF scores an
  item from its text). The count is reported as ``n_default``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from training.data.splits import covering_random_split, keep_fraction
from training.evaluate import evaluate_ratings, rating_validation
from training.models.base import EpochCallback
from training.protocols.common import (
    DataSpec,
    check_options,
    dataset_name,
    fit_seed,
    load,
    option_bool,
    option_float,
    require_rating_model,
    seed_run,
    sub_seed,
)
from training.protocols.ratings_random import HEADLINE, explicit
from training.protocols.report import ProtocolReport

NAME = "ratings-split"
OPTIONS = {
    "train_fraction": "share of the 80% training part kept (default 1.0)",
    "default_rating": "prediction for a pair with an unseen user (or item) (default 3)",
    "predict_cold_items": "let the model predict items without training ratings (default false)",
}


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
    """RMSE on a covering 80/10/10 split per seed, optionally with a thinned training part."""
    opts = check_options(NAME, options, OPTIONS)
    require_rating_model(model_name, NAME)
    data = explicit(load(data_spec, data_dir), NAME)
    train_fraction = option_float(opts, "train_fraction", 1.0)
    default = option_float(opts, "default_rating", 3.0)
    cold = option_bool(opts, "predict_cold_items", False)
    runs = []
    for seed in seeds:
        train, valid, test = covering_random_split(data, (0.8, 0.1, 0.1), seed)
        if train_fraction < 1.0:
            train = keep_fraction(train, train_fraction, sub_seed(seed, "train_fraction"))
        train_csr = train.to_csr()
        validation = rating_validation(train_csr, valid, "rmse", default, predict_cold_items=cold)
        scorer, report = fit_seed(model_name, overrides or {}, seed, train, validation, callbacks)
        metrics = evaluate_ratings(scorer, train_csr, test, default, predict_cold_items=cold)
        runs.append(seed_run(seed, metrics, report))
    return ProtocolReport(
        NAME, model_name, dataset_name(data_spec), runs, HEADLINE, dict(overrides or {}), opts
    )
