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

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from training.data.errors import DataError
from training.data.interactions import Interactions
from training.data.splits import per_user_holdout
from training.evaluate import evaluate_topk, topk_validation
from training.models.base import EpochCallback
from training.protocols.common import (
    DataSpec,
    check_options,
    data_root,
    fit_seed,
    option_float,
    seed_run,
)
from training.protocols.report import ProtocolReport

NAME = "irgan"
HEADLINE = ["precision@3", "precision@5", "precision@10", "ndcg@3", "ndcg@5", "ndcg@10"]
POSITIVE_ABOVE = 3.99  # cf_gan.py: `if r > 3.99`
FILES = ("movielens-100k-train.txt", "movielens-100k-test.txt")
OPTIONS = {
    "valid_fraction": "share of each user's training positives held out for selection (default 0: none)",
}


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
    """Fit on the training positives, rank each test user's unseen items, P/NDCG at 3, 5, 10."""
    opts = check_options(NAME, options, OPTIONS)
    valid_fraction = option_float(opts, "valid_fraction", 0.0)
    train_all, test = read_irgan_ml100k(_folder(data_spec, data_dir))
    positives = train_all.binarize(POSITIVE_ABOVE)
    test_relevant = test.binarize(POSITIVE_ABOVE).to_csr("ones")
    seen = positives.to_csr("ones")
    users = np.arange(positives.n_users)
    runs = []
    for seed in seeds:
        train, validation = positives, None
        if valid_fraction > 0:
            train, valid = per_user_holdout(positives, valid_fraction, seed)
            validation = topk_validation(
                train.to_csr("ones"), valid.to_csr("ones"), metric="ndcg@5", users=users
            )
        scorer, report = fit_seed(model_name, overrides or {}, seed, train, validation, callbacks)
        metrics = evaluate_topk(
            scorer, seen, test_relevant, ks=(3, 5, 10), metrics=("precision", "ndcg"), users=users
        )
        metrics["test_users"] = float((np.diff(test_relevant.indptr) > 0).sum())
        runs.append(seed_run(seed, metrics, report))
    name = data_spec if isinstance(data_spec, str) else "irgan-ml-100k"
    return ProtocolReport(NAME, model_name, name, runs, HEADLINE, dict(overrides or {}), opts)
