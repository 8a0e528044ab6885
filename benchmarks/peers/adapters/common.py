"""What every peer adapter shares: read the shared split, rank, time epochs, write predictions.

This module runs inside the peers' venv, so it imports numpy and scipy only —
never genrec. The split is plain CSV over dense indices (``user,item,rating``)
with a ``meta.json``, so a peer needs no id mapping of ours. An adapter writes
two files into its output directory:

* ``predictions.npz`` (``np.savez``, numeric arrays only, read back with
  ``allow_pickle=False``): per checkpoint ``c``, ``valid_topk``/``test_topk``
  (C, U, K) item indices best first, already excluding what the protocol
  excludes, or ``valid_pred``/``test_pred`` (C, N) predicted ratings aligned
  with the rows of ``valid.csv``/``test.csv``;
* ``result.json``: peer, model, versions, settings, ``checkpoints`` (epoch and
  cumulative training wall and CPU seconds — evaluation time excluded),
  ``epochs_trained``, ``train_seconds``, ``train_cpu_seconds`` and the
  process's peak RSS. CPU seconds matter on a shared machine: wall time there
  includes waiting for a core, CPU time does not.

genrec scores these files with its own metrics (``benchmarks/peers/score.py``),
so every library is measured by the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from training.key_values import parse_pairs  # stdlib only: importable from any venv

TOPK = 100  # longest cut-off any protocol reads (NDCG@100)
STRONG_PARTS = ("train", "valid_fold_in", "valid_heldout", "test_fold_in", "test_heldout")
RECORD_PARTS = ("train", "valid", "test")
RATING_PROTOCOLS = ("ratings", "text")  # scored on predicted ratings (valid_pred / test_pred)


class AdapterError(RuntimeError):
    """An adapter was given a split or settings it cannot use; the message says which."""


@dataclass(frozen=True)
class Part:
    """One CSV of the split: aligned arrays of dense user/item indices and ratings."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Split:
    """The shared split of one protocol as the peers read it."""

    protocol: str
    n_users: int
    n_items: int
    parts: dict[str, Part]
    meta: dict[str, Any]
    documents: dict[str, Any] | None = None  # the text protocol's documents.json

    def csr(self, name: str, ones: bool = True) -> sp.csr_matrix:
        """(n_users, n_items) matrix of one part (1.0 per record when ``ones``)."""
        part = self.parts[name]
        values = np.ones(len(part), np.float32) if ones else part.ratings.astype(np.float32)
        m = sp.csr_matrix(
            (values, (part.users, part.items)), shape=(self.n_users, self.n_items), dtype=np.float32
        )
        m.sum_duplicates()
        if ones:
            m.data[:] = 1.0
        return m

    def eval_users(self, which: str) -> np.ndarray:
        """Users (sorted) that have a relevant item in the ``which`` ("valid"/"test") target."""
        return np.asarray(self.meta[f"{which}_users"], dtype=np.int64)

    def eval_history(self, which: str) -> sp.csr_matrix:
        """(U_eval, I) the input rows of the evaluated users (the model sees these)."""
        name = f"{which}_fold_in" if self.protocol == "strong" else "train"
        return self.csr(name)[self.eval_users(which)]

    def eval_exclude(self, which: str) -> sp.csr_matrix:
        """(U_eval, I) items that must not be recommended to the evaluated users."""
        if self.protocol == "strong":
            return self.csr(f"{which}_fold_in")[self.eval_users(which)]
        seen = self.csr("train")
        if which == "test":
            seen = seen + self.csr("valid")
        return sp.csr_matrix(seen)[self.eval_users(which)]


def read_part(path: Path) -> Part:
    """A split CSV (header ``user,item,rating``) as arrays."""
    if not path.exists():
        raise AdapterError(f"split file {path} is missing; write the split first")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    if table.size == 0:
        table = np.zeros((0, 3))
    return Part(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2])


def read_split(directory: Path) -> Split:
    """The split written by ``benchmarks.peers.split`` into ``directory``."""
    meta_path = directory / "meta.json"
    if not meta_path.exists():
        raise AdapterError(f"{meta_path} is missing: {directory} is not a written split")
    meta = json.loads(meta_path.read_text())
    names = STRONG_PARTS if meta["protocol"] == "strong" else RECORD_PARTS
    parts = {name: read_part(directory / f"{name}.csv") for name in names}
    documents = None
    if meta["protocol"] == "text":
        documents = json.loads((directory / "documents.json").read_text())
    return Split(
        meta["protocol"], int(meta["n_users"]), int(meta["n_items"]), parts, meta, documents
    )


def topk_excluding(scores: np.ndarray, exclude: sp.csr_matrix, k: int = TOPK) -> np.ndarray:
    """(B, k) best items of each row of ``scores`` (B, I) after setting excluded ones to -inf."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    coo = exclude.tocoo()
    scores[coo.row, coo.col] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def set_threads(n: int) -> None:
    """Same thread count for every library: OpenMP/MKL env and torch, when it is present."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class Recorder:
    """Collects checkpoints (predictions + cumulative training time) and writes them out."""

    peer: str
    model: str
    protocol: str
    settings: dict[str, Any]
    versions: dict[str, str]
    train_seconds: float = 0.0
    train_cpu_seconds: float = 0.0
    epochs_trained: int = 0
    checkpoints: list[dict[str, float]] = field(default_factory=list)
    arrays: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @contextmanager
    def training(self, epochs: int = 1) -> Iterator[None]:
        """Time a block of training; only these blocks count as training time."""
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        self.add(time.perf_counter() - t0, time.process_time() - c0, epochs)

    def add(self, seconds: float, cpu_seconds: float, epochs: int) -> None:
        """Book training time measured elsewhere (e.g. inside a peer's own epoch loop)."""
        self.train_seconds += seconds
        self.train_cpu_seconds += cpu_seconds
        self.epochs_trained += epochs

    def checkpoint(self, **arrays: np.ndarray) -> None:
        """Record predictions of the model as it is now (after ``epochs_trained`` epochs)."""
        self.checkpoints.append(
            {
                "epoch": self.epochs_trained,
                "seconds": self.train_seconds,
                "cpu_seconds": self.train_cpu_seconds,
            }
        )
        for name, value in arrays.items():
            self.arrays.setdefault(name, []).append(np.asarray(value))

    def refit_checkpoint(
        self, epochs: int, seconds: float, cpu_seconds: float, **arrays: np.ndarray
    ) -> None:
        """A checkpoint from a fresh fit of ``epochs`` epochs (peers without an epoch hook).

        Such a peer is refitted from scratch for each epoch budget; the
        checkpoint's time is that one fit's, not the sum of the refits.
        """
        self.train_seconds, self.train_cpu_seconds = seconds, cpu_seconds
        self.epochs_trained = epochs
        self.checkpoint(**arrays)

    def write(self, out: Path) -> None:
        if not self.checkpoints:
            raise AdapterError(f"{self.peer}/{self.model}: no checkpoint was recorded")
        out.mkdir(parents=True, exist_ok=True)
        np.savez(out / "predictions.npz", **{k: np.stack(v) for k, v in self.arrays.items()})
        result = {
            "peer": self.peer,
            "model": self.model,
            "protocol": self.protocol,
            "settings": self.settings,
            "versions": self.versions,
            "checkpoints": self.checkpoints,
            "epochs_trained": self.epochs_trained,
            "train_seconds": self.train_seconds,
            "train_cpu_seconds": self.train_cpu_seconds,
            "peak_rss_mb": peak_rss_mb(),
        }
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


def adapter_args(description: str, models: list[str]) -> argparse.Namespace:
    """The command line every adapter takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--split", type=Path, required=True, help="directory of the shared split")
    parser.add_argument("--model", required=True, choices=models)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=1, help="checkpoint every N epochs")
    parser.add_argument("--device", default="cpu", help="torch device (peers that use torch)")
    parser.add_argument(
        "--set",
        dest="pairs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a shared model setting, in genrec's name (the ConvMF budget)",
    )
    args = parser.parse_args()
    if args.epochs < 1 or args.every < 1:
        raise AdapterError("--epochs and --every must be >= 1")
    args.sets = parse_pairs(args.pairs)
    return args


def should_checkpoint(epoch: int, epochs: int, every: int) -> bool:
    return epoch % every == 0 or epoch == epochs
