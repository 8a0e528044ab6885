"""Score every library's output with genrec's own metrics, and assemble the comparison rows.

A peer's ``predictions.npz`` holds, per checkpoint, top-k lists (top-k
protocols) or predicted ratings (the ratings protocol) for the validation and
test rows of the shared split. This module measures them with
``training.metrics`` — the functions ``training.evaluate`` itself calls — picks
the checkpoint with the best validation value (as genrec's trainer keeps its
best epoch) and reports the test metrics there. genrec's own runs come with
their metrics already measured by ``training.evaluate`` on the kept epoch.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from benchmarks.peers.adapters.common import RATING_PROTOCOLS
from training import metrics as M

# Per protocol: the test metrics (paper's order), the validation metric and its direction.
HEADLINE = {
    "strong": ["ndcg@100", "recall@20", "recall@50"],
    "weak": ["precision@5", "recall@5", "ndcg@5", "mrr@5"],
    "ratings": ["rmse", "mae"],
    "text": ["rmse", "mae"],
}
SELECT = {
    "strong": ("ndcg@100", True),
    "weak": ("ndcg@5", True),
    "ratings": ("rmse", False),
    "text": ("rmse", False),
}


class ScoreError(ValueError):
    """A predictions file does not fit its split; the message says how."""


@dataclass
class Row:
    """One library x model x protocol: accuracy at the kept epoch, time, memory."""

    protocol: str
    model: str
    peer: str
    metrics: dict[str, float]
    best_epoch: int
    epochs_trained: int
    seconds_per_epoch: float
    cpu_seconds_per_epoch: float
    seconds_to_best: float
    cpu_seconds_to_best: float
    peak_rss_mb: float
    versions: dict[str, str]
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- split access


def _meta(split: Path) -> dict[str, Any]:
    return json.loads((split / "meta.json").read_text())


def _csr(split: Path, name: str, meta: dict[str, Any], ones: bool = True) -> sp.csr_matrix:
    table = np.loadtxt(split / f"{name}.csv", delimiter=",", skiprows=1, ndmin=2)
    if table.size == 0:
        table = np.zeros((0, 3))
    values = np.ones(len(table)) if ones else table[:, 2]
    m = sp.csr_matrix(
        (values, (table[:, 0].astype(int), table[:, 1].astype(int))),
        shape=(meta["n_users"], meta["n_items"]),
    )
    m.sum_duplicates()
    return m


def relevant_rows(split: Path, which: str) -> sp.csr_matrix:
    """(U_eval, I) the items to recover for the evaluated users of ``which``."""
    meta = _meta(split)
    name = f"{which}_heldout" if meta["protocol"] == "strong" else which
    return _csr(split, name, meta)[np.asarray(meta[f"{which}_users"], dtype=np.int64)]


def excluded_rows(split: Path, which: str) -> sp.csr_matrix:
    """(U_eval, I) what a list must not contain (the protocol's exclusion)."""
    meta = _meta(split)
    users = np.asarray(meta[f"{which}_users"], dtype=np.int64)
    if meta["protocol"] == "strong":
        return _csr(split, f"{which}_fold_in", meta)[users]
    seen = _csr(split, "train", meta)
    if which == "test":
        seen = seen + _csr(split, "valid", meta)
    return sp.csr_matrix(seen)[users]


# --------------------------------------------------------------------------- metrics


def topk_metrics(ranked: np.ndarray, relevant: sp.csr_matrix, protocol: str) -> dict[str, float]:
    """Mean metrics over users with a relevant item, as ``evaluate_topk`` computes them."""
    keep = M.n_relevant(relevant) > 0
    ranked, relevant = ranked[keep], relevant[keep]
    out: dict[str, float] = {}
    for key in HEADLINE[protocol]:
        name, _, cut = key.partition("@")
        k = int(cut)
        if name == "recall":
            denominator = "min" if protocol == "strong" else "relevant"
            values = M.recall_at_k(ranked, relevant, k, denominator=denominator)
        else:
            values = M.TOPK_METRICS[name](ranked, relevant, k)
        out[key] = float(np.mean(values))
    return out


def check_lists(ranked: np.ndarray, exclude: sp.csr_matrix, peer: str) -> None:
    """A list that recommends an excluded item (or is misaligned) is a peer bug, not a score."""
    if ranked.shape[0] != exclude.shape[0]:
        raise ScoreError(f"{peer}: {ranked.shape[0]} ranked rows, expected {exclude.shape[0]}")
    if ranked.size and (ranked.min() < 0 or ranked.max() >= exclude.shape[1]):
        raise ScoreError(f"{peer}: item index outside [0, {exclude.shape[1]})")
    # As genrec's ``rank``: a user with fewer allowed items than k gets excluded ones in the
    # tail of the list (they are never relevant); before that point none may appear.
    allowed = exclude.shape[1] - M.n_relevant(exclude)
    hit = M.hits(ranked, exclude, ranked.shape[1])
    early = hit & (np.arange(ranked.shape[1])[None, :] < allowed[:, None])
    if early.any():
        raise ScoreError(f"{peer}: {int(early.sum())} recommended items are excluded ones")


def rating_metrics(pred: np.ndarray, split: Path, which: str) -> dict[str, float]:
    """RMSE/MAE with ``evaluate_ratings``' rules: clip to the range; unknown user/item -> default."""
    meta = _meta(split)
    table = np.loadtxt(split / f"{which}.csv", delimiter=",", skiprows=1, ndmin=2)
    if len(pred) != len(table):
        raise ScoreError(f"{len(pred)} predictions for {len(table)} {which} rows")
    train = _csr(split, "train", meta)
    known_user = np.diff(train.indptr) > 0
    known_item = np.bincount(train.indices, minlength=train.shape[1]) > 0
    users, items = table[:, 0].astype(int), table[:, 1].astype(int)
    low, high = meta["rating_range"]
    pred = np.clip(np.asarray(pred, dtype=np.float64), low, high)
    pred = np.where(known_user[users] & known_item[items], pred, meta["default_rating"])
    return {"rmse": M.rmse(pred, table[:, 2]), "mae": M.mae(pred, table[:, 2])}


# --------------------------------------------------------------------------- selection + timing


def _evaluate_checkpoint(arrays: Any, c: int, split: Path, which: str, peer: str) -> dict:
    protocol = _meta(split)["protocol"]
    if protocol in RATING_PROTOCOLS:
        return rating_metrics(arrays[f"{which}_pred"][c], split, which)
    ranked = np.asarray(arrays[f"{which}_topk"][c], dtype=np.int64)
    check_lists(ranked, excluded_rows(split, which), peer)
    return topk_metrics(ranked, relevant_rows(split, which), protocol)


def per_epoch(checkpoints: list[dict[str, float]], key: str) -> float:
    """Steady-state seconds per epoch: median increment between checkpoints.

    The first checkpoint is dropped when there are three or more (it carries
    one-off warm-up: allocator, first-call dispatch); with fewer, total / epochs.
    """
    points = [(c["epoch"], c[key]) for c in checkpoints]
    if len(points) < 3:
        epoch, seconds = points[-1]
        return seconds / max(epoch, 1)
    rates = [(s1 - s0) / (e1 - e0) for (e0, s0), (e1, s1) in itertools.pairwise(points) if e1 > e0]
    return float(np.median(rates))


def score_run(run_dir: Path, split: Path) -> Row:
    """The row of one finished run (``result.json`` + ``predictions.npz`` when a peer's)."""
    result = json.loads((run_dir / "result.json").read_text())
    protocol = result["protocol"]
    checkpoints = result["checkpoints"]
    if "metrics" in result:  # genrec: measured by training.evaluate on the kept epoch
        # Time it between validated epochs only, as the peers' checkpoints are spaced.
        checkpoints = [c for c in checkpoints if "valid" in c] or checkpoints
        best_epoch = int(result["best_epoch"])
        best = next(c for c in checkpoints if c["epoch"] == best_epoch)
        metrics = {k: result["metrics"][k] for k in HEADLINE[protocol]}
    else:
        with np.load(run_dir / "predictions.npz", allow_pickle=False) as arrays:
            metric, higher = SELECT[protocol]
            values = [
                _evaluate_checkpoint(arrays, c, split, "valid", result["peer"])[metric]
                for c in range(len(checkpoints))
            ]
            pick = int(np.argmax(values) if higher else np.argmin(values))
            metrics = _evaluate_checkpoint(arrays, pick, split, "test", result["peer"])
        best = checkpoints[pick]
        best_epoch = int(best["epoch"])
    return Row(
        protocol=protocol,
        model=result["model"],
        peer=result["peer"],
        metrics=metrics,
        best_epoch=best_epoch,
        epochs_trained=int(result["epochs_trained"]),
        seconds_per_epoch=per_epoch(checkpoints, "seconds"),
        cpu_seconds_per_epoch=per_epoch(checkpoints, "cpu_seconds"),
        seconds_to_best=float(best["seconds"]),
        cpu_seconds_to_best=float(best["cpu_seconds"]),
        peak_rss_mb=float(result["peak_rss_mb"]),
        versions=result["versions"],
        settings=result["settings"],
    )
