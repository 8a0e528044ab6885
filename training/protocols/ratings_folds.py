"""Rating prediction on ML-100K's own five folds (``u1..u5.base/test``, 80/20).

GroupLens ships these disjoint test sets (together they are ``u.data``); the
protocol runs one fit per fold, so ``seeds`` are ignored: the five folds are
the five runs. As in ``ratings-random``, 5% of each base file is carved out
(seeded by the fold number) as validation for early stopping, and a test pair
with an unseen user or item is predicted 3 (counted as ``n_default``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from training.data.movielens import read_ml100k_folds
from training.protocols.common import DataSpec, Plan, ProtocolError, Trial
from training.protocols.options import ProtocolOptions, fraction, option
from training.protocols.ratings_random import (
    DEFAULT_RATING_HELP,
    VALID_FRACTION_HELP,
    rating_trial,
)

NAME = "ratings-folds"


def _some_folds(folds: tuple[str, ...]) -> str | None:
    return None if folds else "at least one fold name, e.g. u1"


@dataclass(frozen=True)
class Options(ProtocolOptions):
    """Which GroupLens folds, and ``ratings-random``'s validation share and unseen-pair rating."""

    protocol: ClassVar[str] = NAME

    folds: tuple[str, ...] = option(
        ("u1", "u2", "u3", "u4", "u5"),
        "comma-separated GroupLens folds",
        check=_some_folds,
        default_text="u1,u2,u3,u4,u5; ua,ub also exist",
    )
    valid_fraction: float = option(0.05, VALID_FRACTION_HELP, check=fraction)
    default_rating: float = option(3.0, DEFAULT_RATING_HELP)


def _folder(data_spec: DataSpec, data_dir: Path | str | None) -> Path:
    if not isinstance(data_spec, str) or data_spec.lower() != "ml-100k":
        raise ProtocolError(f"protocol '{NAME}' runs on 'ml-100k' only, got {data_spec!r}")
    from training.data.datasets import locate_named

    return locate_named("ml-100k", data_dir=Path(data_dir) if data_dir else None)


def fold_number(name: str) -> int:
    """``u3`` -> 3 (the run's label and seed); ``ua`` -> ord('a')."""
    return int(name[1:]) if name[1:].isdigit() else ord(name[1])


def plan(data_spec: DataSpec, data_dir: Path | str | None, opts: Options, seeds: list[int]) -> Plan:
    """One fit per GroupLens fold; ``seeds`` is accepted for a uniform signature and ignored."""
    del seeds  # the folds are fixed files
    pairs = read_ml100k_folds(_folder(data_spec, data_dir), list(opts.folds))
    by_number = {fold_number(name): pair for name, pair in zip(opts.folds, pairs, strict=True)}

    def trial(number: int) -> Trial:
        base, test = by_number[number]
        return rating_trial(number, base, test, opts.valid_fraction, opts.default_rating)

    return Plan("ml-100k", [fold_number(name) for name in opts.folds], trial, seed_label="fold")
