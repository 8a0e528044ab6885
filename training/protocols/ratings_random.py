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

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from training.data.interactions import Interactions
from training.data.splits import random_split
from training.evaluate import evaluate_ratings, rating_validation
from training.models.base import Scorer
from training.protocols.common import (
    DataSpec,
    Plan,
    ProtocolError,
    Trial,
    dataset_name,
    load,
    sub_seed,
)
from training.protocols.options import ProtocolOptions, fraction, option

NAME = "ratings-random"
HEADLINE = ["rmse", "mae"]
#: Shared by every rating protocol: the split's validation share and the unseen-pair rating.
VALID_FRACTION_HELP = "share of the training part carved out for early stopping"
DEFAULT_RATING_HELP = "prediction for a pair with an unseen user or item"


@dataclass(frozen=True)
class Options(ProtocolOptions):
    """The split's shares and the rating given to unseen pairs (AutoRec's code: 3)."""

    protocol: ClassVar[str] = NAME

    test_fraction: float = option(0.1, "share of ratings held out for test", check=fraction)
    valid_fraction: float = option(0.05, VALID_FRACTION_HELP, check=fraction)
    default_rating: float = option(3.0, DEFAULT_RATING_HELP)


def explicit(data: Interactions, protocol: str) -> Interactions:
    if not data.explicit:
        raise ProtocolError(f"protocol '{protocol}' needs explicit ratings; the data has none")
    return data


def rating_trial(
    seed: int, train_all: Interactions, test: Interactions, valid_fraction: float, default: float
) -> Trial:
    """Carve validation out of ``train_all`` (early stopping on RMSE); measure RMSE on ``test``."""
    train, valid = random_split(
        train_all, (1 - valid_fraction, valid_fraction), sub_seed(seed, "valid")
    )
    train_csr = train.to_csr()
    validation = rating_validation(train_csr, valid, "rmse", default)

    def measure(scorer: Scorer) -> dict[str, float]:
        return evaluate_ratings(scorer, train_csr, test, default)

    return Trial(train, validation, measure)


def split_ratings(
    data: Interactions, opts: Options, seed: int
) -> tuple[Interactions, Interactions]:
    """One seed's (training part, test part): the random ``1 - test_fraction`` / ``test_fraction``."""
    train_all, test = random_split(data, (1 - opts.test_fraction, opts.test_fraction), seed)
    return train_all, test


def plan(data_spec: DataSpec, data_dir: Path | str | None, opts: Options, seeds: list[int]) -> Plan:
    """RMSE on a fresh random 90/10 split per seed."""
    data = explicit(load(data_spec, data_dir), NAME)

    def trial(seed: int) -> Trial:
        train_all, test = split_ratings(data, opts, seed)
        return rating_trial(seed, train_all, test, opts.valid_fraction, opts.default_rating)

    return Plan(dataset_name(data_spec), seeds, trial)
