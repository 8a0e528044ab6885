"""I-CF-NADE: validation RMSE of the trained user rows against their fold-in, per prior λ_f.

    OMP_NUM_THREADS=1 GENREC_DATA_DIR=../shared/data python benchmarks/i_cf_nade_fold_in.py \
        [--epochs 40] [--priors 0.1 1 10 30 100 300 1000]

The ``ratings-random`` split of seed 0 and its 5% validation carve-out; one
``i-cf-nade`` fitted for ``--epochs`` epochs (no early stopping) with the
re-fit switched off. Then each validation user's rows are folded in from their
training ratings (the serving path for a user without a row) under each
prior, and the validation RMSE is printed with the fold-in's cost per user.
This is how ``fold_in_l2`` and ``refit_users`` were chosen
(docs/accuracy-ratings.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from training.data.datasets import load_dataset
from training.data.splits import random_split
from training.evaluate import evaluate_ratings
from training.models.base import History
from training.models.i_cf_nade import ICFNADE, ICFNADEConfig
from training.protocols.common import sub_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--priors", type=float, nargs="+", default=[0.1, 1, 10, 30, 100, 300, 1000])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset("ml-100k")
    train_all, _ = random_split(data, (0.9, 0.1), 0)
    train, valid = random_split(train_all, (0.95, 0.05), sub_seed(0, "valid"))
    config = ICFNADEConfig().with_overrides(
        {"epochs": args.epochs, "patience": None, "refit_users": False}
    )
    model = ICFNADE(config)
    model.fit(train)
    scorer = model.to_scorer()
    matrix = train.to_csr()
    rmse = evaluate_ratings(scorer, matrix, valid, default_rating=3.0)["rmse"]  # AutoRec's 3
    print(f"trained rows: validation RMSE {rmse:.4f}")
    users = np.unique(valid.users)
    history = History.from_csr(matrix, users)
    rows = np.searchsorted(users, valid.users)
    for prior in args.priors:
        scorer.config["fold_in_l2"] = prior
        t0 = time.perf_counter()
        state = scorer.user_state(torch.full((len(users),), -1), history)
        per_user_ms = (time.perf_counter() - t0) / len(users) * 1000
        errors = scorer.predict(state).numpy()[rows, valid.items] - valid.ratings
        rmse = float(np.sqrt(np.mean(errors**2)))
        print(f"fold-in λ_f {prior:g}: validation RMSE {rmse:.4f} ({per_user_ms:.1f} ms/user)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
