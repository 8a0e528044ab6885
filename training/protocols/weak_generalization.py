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

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from training.data.splits import random_split
from training.evaluate import evaluate_topk, topk_validation
from training.models.base import Scorer
from training.protocols.common import DataSpec, Plan, Trial, dataset_name, load
from training.protocols.options import ProtocolOptions

NAME = "weak-generalization"
HEADLINE = ["precision@5", "recall@5", "ndcg@5", "mrr@5"]


@dataclass(frozen=True)
class Options(ProtocolOptions):
    """None: the split is fixed at 60/20/20."""

    protocol: ClassVar[str] = NAME


def plan(data_spec: DataSpec, data_dir: Path | str | None, opts: Options, seeds: list[int]) -> Plan:
    """Fit on 60% of the records, select on 20%, report on the other 20%."""
    data = load(data_spec, data_dir).binarize(None)

    def trial(seed: int) -> Trial:
        train, valid, test = random_split(data, (0.6, 0.2, 0.2), seed)
        history = train.to_csr("ones")
        users = np.arange(data.n_users)
        validation = topk_validation(history, valid.to_csr("ones"), metric="ndcg@5", users=users)

        def measure(scorer: Scorer) -> dict[str, float]:
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
            return metrics

        return Trial(train, validation, measure)

    return Plan(dataset_name(data_spec), seeds, trial)
