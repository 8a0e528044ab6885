"""IRGAN's item-recommendation protocol — Wang et al., SIGIR 2017, Sec. 4.2 (ML-100K).

The authors' files (``irgan-ml-100k/movielens-100k-{train,test}.txt``: tab
separated ``user item rating``, 0-based ids; GroupLens ``u1.base/u1.test``
re-indexed) and their code (``geek-ai/irgan``, ``item_recommendation/cf_gan.py``):

* Positives: ratings >= 4 (the code tests ``r > 3.99``; the paper's text says
  5-star — we follow the code).
* The model trains on the training positives only.
* Every test user with a test positive is ranked over all items minus that
  user's training positives (training items rated < 4 stay candidates, as in
  ``simple_test_one_user``); P@3/5/10 and NDCG@3/5/10, binary relevance.
* The authors select nothing on a validation set; by default neither do we
  (the last epoch is kept). ``valid_fraction`` > 0 holds out that share of
  each user's training positives to select on validation NDCG@5 instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from training.data.errors import DataError
from training.data.interactions import Interactions
from training.data.splits import per_user_holdout
from training.evaluate import evaluate_topk, topk_validation
from training.models.base import Scorer
from training.protocols.common import DataSpec, Plan, Trial, data_root
from training.protocols.options import ProtocolOptions, fraction_or_zero, option

NAME = "irgan"
HEADLINE = ["precision@3", "precision@5", "precision@10", "ndcg@3", "ndcg@5", "ndcg@10"]
POSITIVE_ABOVE = 3.99  # cf_gan.py: `if r > 3.99`
FILES = ("movielens-100k-train.txt", "movielens-100k-test.txt")


@dataclass(frozen=True)
class Options(ProtocolOptions):
    """The authors select nothing; ``valid_fraction`` > 0 adds selection on validation."""

    protocol: ClassVar[str] = NAME

    valid_fraction: float = option(
        0.0,
        "share of each user's training positives held out for selection",
        check=fraction_or_zero,
        default_text="0: none",
    )


def read_irgan_ml100k(directory: Path | str) -> tuple[Interactions, Interactions]:
    """(train, test) explicit ratings from the authors' two files, over one shared id map."""
    directory = Path(directory)
    frames = []
    for name in FILES:
        path = directory / name
        if not path.is_file():
            raise DataError(f"{path}: file not found (expected the IRGAN authors' ML-100K files)")
        try:
            frame = pd.read_csv(path, sep="\t", header=None, usecols=[0, 1, 2], dtype="float64")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise DataError(f"{path}: not 'user<TAB>item<TAB>rating' rows ({exc})") from exc
        frames.append(frame)
    both = pd.concat(frames, ignore_index=True)
    data = Interactions.from_arrays(
        both[0].astype(np.int64).to_numpy(), both[1].astype(np.int64).to_numpy(), both[2].to_numpy()
    )
    in_train = np.arange(len(data)) < len(frames[0])
    return data.subset(in_train), data.subset(~in_train)


def _folder(data_spec: DataSpec, data_dir: Path | str | None) -> Path:
    if isinstance(data_spec, str) and Path(data_spec).is_dir():
        return Path(data_spec)
    if not isinstance(data_spec, str):
        raise DataError(
            "protocol 'irgan' reads the authors' files: give 'irgan-ml-100k' or a folder"
        )
    return data_root(data_dir) / data_spec


def plan(data_spec: DataSpec, data_dir: Path | str | None, opts: Options, seeds: list[int]) -> Plan:
    """Fit on the training positives, rank each test user's unseen items, P/NDCG at 3, 5, 10."""
    train_all, test = read_irgan_ml100k(_folder(data_spec, data_dir))
    positives = train_all.binarize(POSITIVE_ABOVE)
    test_relevant = test.binarize(POSITIVE_ABOVE).to_csr("ones")
    seen = positives.to_csr("ones")
    users = np.arange(positives.n_users)

    def measure(scorer: Scorer) -> dict[str, float]:
        metrics = evaluate_topk(
            scorer, seen, test_relevant, ks=(3, 5, 10), metrics=("precision", "ndcg"), users=users
        )
        metrics["test_users"] = float((np.diff(test_relevant.indptr) > 0).sum())
        return metrics

    def trial(seed: int) -> Trial:
        if opts.valid_fraction <= 0:
            return Trial(positives, None, measure)
        train, valid = per_user_holdout(positives, opts.valid_fraction, seed)
        validation = topk_validation(
            train.to_csr("ones"), valid.to_csr("ones"), metric="ndcg@5", users=users
        )
        return Trial(train, validation, measure)

    name = data_spec if isinstance(data_spec, str) else "irgan-ml-100k"
    return Plan(name, seeds, trial)
