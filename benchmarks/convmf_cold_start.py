"""Cold-start items on MovieLens-100K: ConvMF's vectors from text vs. mean fallbacks.

    OMP_NUM_THREADS=1 GENREC_DATA_DIR=../shared/data python benchmarks/convmf_cold_start.py \
        [--seeds 0 1 2] [--cold-fraction 0.1] [--set lambda_u=10 --set lambda_v=10 ...]

Per seed: 10% of the items that have a plot are held out entirely (every
rating of theirs leaves training). ConvMF trains on the rest (90/10 random
train/validation of the remaining ratings, validation RMSE for selection).
The held-out items' vectors are then computed from their plots with the
trained CNN exactly as serving does for a new item
(``ConvMFScorer.item_vectors_from_text``), and their real ratings are
predicted as state . row, clipped to the rating range. Under the default
``biases=true, new_item_anchor=user_mean`` that is m_i + (b~_j - b_bar) + u_i .
(v~_j - v_bar) with [v~_j, b~_j] = cnn(W, X_j) (``convmf_text``); the same
trained model read literally (``new_item_anchor=model``) gives mu + b_i +
b~_j + u_i . v~_j (``model_anchor_text``), and for an empty document
(``model_anchor_no_text``: what it says without the text). With
``--set biases=false`` (the paper) it is u_i . cnn(W, X_j). Fallbacks: the
global training mean (the item-mean fallback, since an unseen item has no
item mean) and the user's training mean. RMSE everywhere through
``training.metrics.rmse``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from training import metrics as M
from training.data.datasets import load_dataset
from training.data.documents import item_texts
from training.data.splits import random_split
from training.evaluate import rating_validation
from training.models.base import History
from training.models.convmf import ConvMF, ConvMFConfig
from training.models.convmf_scorer import ConvMFScorer
from training.models.text_cnn import with_documents


def run_seed(seed: int, cold_fraction: float, overrides: dict[str, str]) -> dict[str, float]:
    """RMSE of ConvMF-from-text, global mean and user mean on the cold items' ratings."""
    data = with_documents(load_dataset("ml-100k"), None)
    texts = item_texts(data)
    rng = np.random.default_rng(seed)
    with_text = np.array([j for j, t in enumerate(texts) if t is not None])
    cold = rng.choice(with_text, size=round(cold_fraction * len(with_text)), replace=False)
    is_cold = np.isin(data.items, cold)
    warm, test = data.subset(~is_cold), data.subset(is_cold)
    train, valid = random_split(warm, (0.9, 0.1), seed)
    config = dataclasses.replace(ConvMFConfig().with_overrides(overrides), seed=seed)
    model = ConvMF(config)
    t0 = time.perf_counter()
    report = model.fit(train, rating_validation(train.to_csr(), valid, "rmse", 3.0))
    fit_seconds = time.perf_counter() - t0
    scorer = model.to_scorer()

    # Serving's new-item path: rows from the plots alone, appended as serving does.
    docs = [str(texts[j]) for j in cold]
    new_rows = scorer.item_vectors_from_text(docs)  # (C, D)
    users = np.unique(test.users)
    with torch.no_grad():
        state = scorer.user_state(torch.as_tensor(users), History.from_csr(train.to_csr(), users))
    col = {int(j): c for c, j in enumerate(cold)}
    rows, cols = np.searchsorted(users, test.users), [col[int(j)] for j in test.items]

    def predict(rows_from_text: torch.Tensor) -> np.ndarray:
        """Clipped state . row for every cold test pair."""
        table = (state @ rows_from_text.T).clamp(*scorer.rating_range).numpy()
        return table[rows, cols]

    extra: dict[str, float] = {}
    if scorer.biases:  # the literal biased model, mu + b_i + b~_j + u . v~_j, with and without text
        literal = ConvMFScorer({**scorer.config, "new_item_anchor": "model"}, scorer.t)
        extra["model_anchor_text"] = M.rmse(
            predict(literal.item_vectors_from_text(docs)), test.ratings
        )
        extra["model_anchor_no_text"] = M.rmse(
            predict(literal.item_vectors_from_text([""] * len(docs))), test.ratings
        )
    pred = predict(new_rows)

    mu = float(train.ratings.mean())
    counts = np.bincount(train.users, minlength=train.n_users)
    sums = np.bincount(train.users, weights=train.ratings, minlength=train.n_users)
    user_mean = np.where(counts > 0, sums / np.maximum(counts, 1), mu)
    return {
        "cold_items": float(len(cold)),
        "cold_ratings": float(len(test)),
        "convmf_text": M.rmse(pred, test.ratings),
        **extra,
        "global_mean": M.rmse(np.full(len(test), mu), test.ratings),
        "user_mean": M.rmse(user_mean[test.users], test.ratings),
        "warm_valid_rmse": report.best_metrics["rmse"],
        "best_iter": float(report.best_epoch),
        "fit_seconds": fit_seconds,
        "rows_match_table": float(
            torch.allclose(new_rows, scorer.t["items"][torch.as_tensor(cold)], atol=1e-5)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cold-fraction", type=float, default=0.1)
    parser.add_argument("--set", action="append", default=[], help="ConvMF setting k=v")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = dict(s.split("=", 1) for s in args.set)
    print(f"cold-start, ML-100K, cold fraction {args.cold_fraction}, settings {overrides}")
    runs = []
    for seed in args.seeds:
        r = run_seed(seed, args.cold_fraction, overrides)
        runs.append(r)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()), flush=True)
    print("| predictor | cold-item RMSE (mean ± std over seeds) |")
    print("|---|---|")
    keys = ("convmf_text", "model_anchor_text", "model_anchor_no_text", "user_mean", "global_mean")
    for key in (k for k in keys if k in runs[0]):
        values = np.array([r[key] for r in runs])
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        print(f"| {key} | {values.mean():.4f} ± {std:.4f} |")


if __name__ == "__main__":
    main()
