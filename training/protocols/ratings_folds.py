"""Rating prediction on ML-100K's own five folds (``u1..u5.base/test``, 80/20).

GroupLens ships these disjoint test sets (together they are ``u.data``); the
protocol runs one fit per fold, so ``seeds`` are ignored: the five folds are
the five runs. As in ``ratings-random``, 5% of each base file is carved out
(seeded by the fold number) as validation for early stopping, and a test pair
with an unseen user or item is predicted 3 (counted as ``n_default``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from training.data.movielens import read_ml100k_folds
from training.models.base import EpochCallback
from training.protocols.common import (
    DataSpec,
    ProtocolError,
    check_options,
    option_float,
    require_rating_model,
)
from training.protocols.ratings_random import HEADLINE, fit_and_rate
from training.protocols.report import ProtocolReport

NAME = "ratings-folds"
OPTIONS = {
    "folds": "comma-separated GroupLens folds (default u1,u2,u3,u4,u5; ua,ub also exist)",
    "valid_fraction": "share of each base file carved out for early stopping (default 0.05)",
    "default_rating": "prediction for a pair with an unseen user or item (default 3)",
}


def _folder(data_spec: DataSpec, data_dir: Path | str | None) -> Path:
    if not isinstance(data_spec, str) or data_spec.lower() != "ml-100k":
        raise ProtocolError(f"protocol '{NAME}' runs on 'ml-100k' only, got {data_spec!r}")
    from training.data.datasets import locate_named

    return locate_named("ml-100k", data_dir=Path(data_dir) if data_dir else None)


def run(
    model_name: str,
    data_spec: DataSpec,
    *,
    seeds: list[int] | None = None,
    overrides: Mapping[str, str] | None = None,
    data_dir: Path | str | None = None,
    callbacks: list[EpochCallback] | None = None,
    options: Mapping[str, str] | None = None,
) -> ProtocolReport:
    """One fit per GroupLens fold; ``seeds`` is accepted for a uniform signature and ignored."""
    del seeds  # the folds are fixed files
    opts = check_options(NAME, options, OPTIONS)
    require_rating_model(model_name, NAME)
    folds = [f.strip() for f in opts.get("folds", "u1,u2,u3,u4,u5").split(",") if f.strip()]
    valid_fraction = option_float(opts, "valid_fraction", 0.05)
    default = option_float(opts, "default_rating", 3.0)
    pairs = read_ml100k_folds(_folder(data_spec, data_dir), folds)
    runs = []
    for name, (base, test) in zip(folds, pairs, strict=True):
        fold_number = int(name[1:]) if name[1:].isdigit() else ord(name[1])
        runs.append(
            fit_and_rate(
                model_name,
                overrides or {},
                fold_number,
                base,
                test,
                valid_fraction,
                default,
                callbacks,
            )
        )
    return ProtocolReport(
        NAME, model_name, "ml-100k", runs, HEADLINE, dict(overrides or {}), opts, seed_label="fold"
    )
