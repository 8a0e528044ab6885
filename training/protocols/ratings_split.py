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

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from training.data.splits import covering_random_split, keep_fraction
from training.evaluate import evaluate_ratings, rating_validation
from training.models.base import Scorer
from training.protocols.common import DataSpec, Plan, Trial, dataset_name, load, sub_seed
from training.protocols.options import ProtocolOptions, option, share
from training.protocols.ratings_random import explicit

NAME = "ratings-split"


@dataclass(frozen=True)
class Options(ProtocolOptions):
    """The paper's sparsity knob and how pairs without training ratings are predicted."""

    protocol: ClassVar[str] = NAME

    train_fraction: float = option(1.0, "share of the 80% training part kept", check=share)
    default_rating: float = option(3.0, "prediction for a pair with an unseen user (or item)")
    predict_cold_items: bool = option(False, "let the model predict items without training ratings")


def plan(data_spec: DataSpec, data_dir: Path | str | None, opts: Options, seeds: list[int]) -> Plan:
    """RMSE on a covering 80/10/10 split per seed, optionally with a thinned training part."""
    data = explicit(load(data_spec, data_dir), NAME)
    default, cold = opts.default_rating, opts.predict_cold_items

    def trial(seed: int) -> Trial:
        train, valid, test = covering_random_split(data, (0.8, 0.1, 0.1), seed)
        if opts.train_fraction < 1.0:
            train = keep_fraction(train, opts.train_fraction, sub_seed(seed, "train_fraction"))
        train_csr = train.to_csr()
        validation = rating_validation(train_csr, valid, "rmse", default, predict_cold_items=cold)

        def measure(scorer: Scorer) -> dict[str, float]:
            return evaluate_ratings(scorer, train_csr, test, default, predict_cold_items=cold)

        return Trial(train, validation, measure)

    return Plan(dataset_name(data_spec), seeds, trial)
