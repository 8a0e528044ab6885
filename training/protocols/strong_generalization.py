"""Strong generalization — Liang, Krishnan, Hoffman & Jebara, WWW 2018 (Mult-VAE), Sec. 4.

* Clicks: ratings > 3.5 (``click_threshold``); users with >= 5 clicks kept.
* Users: N validation + N test users drawn at random (N = 150 below 10k users,
  10,000 otherwise: the paper's ML-20M setting), the rest train the model.
* Items: those the training users clicked; held-out users' other clicks dropped.
* Each held-out user's clicks split 80/20 at random: the 80% fold-in is the
  scorer's input (user index -1), and is excluded from the ranking; the 20%
  held out are the relevant items.
* The model is kept at the best validation NDCG@100; test NDCG@100, Recall@20,
  Recall@50 with Liang's recall denominator min(k, |relevant|).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from training.data.interactions import Interactions
from training.data.splits import strong_generalization
from training.evaluate import evaluate_topk, topk_validation
from training.models.base import EpochCallback
from training.protocols.common import (
    DataSpec,
    ProtocolError,
    check_options,
    dataset_name,
    fit_seed,
    load,
    option_float,
    option_int,
    seed_run,
)
from training.protocols.report import ProtocolReport

NAME = "strong-generalization"
HEADLINE = ["ndcg@100", "recall@20", "recall@50"]
OPTIONS = {
    "click_threshold": "ratings above this are clicks (default 3.5; implicit data: all records)",
    "min_clicks": "users with fewer clicks are dropped (default 5)",
    "heldout_users": "validation users = test users = this many (default 150, 10000 from 10k users)",
    "fold_in_fraction": "share of a held-out user's clicks used as fold-in input (default 0.8)",
}


def clicks(data: Interactions, threshold: float, min_clicks: int) -> Interactions:
    """Liang's ``filter_triplets``: clicks (rating > threshold) of users with >= min_clicks."""
    kept = data.binarize(threshold if data.explicit else None)
    counts = np.bincount(kept.users, minlength=kept.n_users)
    return kept.subset(counts[kept.users] >= min_clicks)


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
    """Train on the training users, select on validation NDCG@100, report the test users."""
    opts = check_options(NAME, options, OPTIONS)
    data = clicks(
        load(data_spec, data_dir),
        option_float(opts, "click_threshold", 3.5),
        option_int(opts, "min_clicks", 5),
    )
    n_active = len(np.unique(data.users))
    n_heldout = option_int(opts, "heldout_users", 150 if n_active < 10_000 else 10_000)
    fold_in = option_float(opts, "fold_in_fraction", 0.8)
    if n_active <= 2 * n_heldout:
        raise ProtocolError(
            f"{n_active} users with enough clicks cannot give 2 x {n_heldout} held-out users; "
            "lower the heldout_users option"
        )
    runs = []
    for seed in seeds:
        split = strong_generalization(data, n_heldout, n_heldout, fold_in, seed)
        train = split.train.compact()  # drop held-out users from the model's user space
        if train.n_items != split.train.n_items:
            raise ProtocolError("internal: the training item space changed while compacting")
        validation = topk_validation(
            split.valid_fold_in.to_csr("ones"),
            split.valid_heldout.to_csr("ones"),
            metric="ndcg@100",
            recall_denominator="min",
        )
        scorer, report = fit_seed(model_name, overrides or {}, seed, train, validation, callbacks)
        test_relevant = split.test_heldout.to_csr("ones")
        metrics = evaluate_topk(
            scorer,
            split.test_fold_in.to_csr("ones"),
            test_relevant,
            ks=(20, 50, 100),
            metrics=("ndcg", "recall"),
            recall_denominator="min",
        )
        result = {k: metrics[k] for k in HEADLINE}
        result["test_users"] = float((np.diff(test_relevant.indptr) > 0).sum())
        runs.append(seed_run(seed, result, report))
    return ProtocolReport(
        NAME, model_name, dataset_name(data_spec), runs, HEADLINE, dict(overrides or {}), opts
    )
