"""Weak generalization: a random 60/20/20 split of all records, users known to the model.

* Clicks: every record (ratings ignored).
* Split: records shuffled with the seed, 60% train / 20% validation / 20% test.
* Scorer input: the user's training rows, with their own user index (the
  user is the model's; as serving does for a user without new interactions).
* Validation ranks all items minus training items; the model is kept at the
  best validation NDCG@5. Test ranks all items minus training and validation
  items; precision, recall (denominator |relevant|), NDCG and MRR at 5.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from training.data.splits import random_split
from training.evaluate import evaluate_topk, topk_validation
from training.models.base import EpochCallback
from training.protocols.common import (
    DataSpec,
    check_options,
    dataset_name,
    fit_seed,
    load,
    seed_run,
)
from training.protocols.report import ProtocolReport

NAME = "weak-generalization"
HEADLINE = ["precision@5", "recall@5", "ndcg@5", "mrr@5"]
OPTIONS: dict[str, str] = {}


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
    """Fit on 60% of the records, select on 20%, report on the other 20%."""
    opts = check_options(NAME, options, OPTIONS)
    data = load(data_spec, data_dir).binarize(None)
    runs = []
    for seed in seeds:
        train, valid, test = random_split(data, (0.6, 0.2, 0.2), seed)
        history = train.to_csr("ones")
        users = np.arange(data.n_users)
        validation = topk_validation(history, valid.to_csr("ones"), metric="ndcg@5", users=users)
        scorer, report = fit_seed(model_name, overrides or {}, seed, train, validation, callbacks)
        seen = (history + valid.to_csr("ones")).tocsr()
        test_relevant = test.to_csr("ones")
        metrics = evaluate_topk(
            scorer,
            history,
            test_relevant,
            ks=(5,),
            metrics=("precision", "recall", "ndcg", "mrr"),
            users=users,
            exclude=seen,
        )
        metrics["test_users"] = float((np.diff(test_relevant.indptr) > 0).sum())
        runs.append(seed_run(seed, metrics, report))
    return ProtocolReport(
        NAME, model_name, dataset_name(data_spec), runs, HEADLINE, dict(overrides or {}), opts
    )
