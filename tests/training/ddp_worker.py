"""One rank of ``test_distributed``: run as ``torchrun -m tests.training.ddp_worker OUT_DIR``.

Trains each distributed model on the same small ratings with the same
settings, then writes ``OUT_DIR/rank<R>.json``: a digest of the scorer's
tensors (DDP must keep every rank's copy identical), the metrics the
pipeline recorded (reduced across ranks) and, measured after leaving the
process group, the same metrics from this rank's scorer over the whole
held-out slice (what one process would have measured); and what
``distributed.from_main`` gave this rank (``_from_main``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from training import distributed
from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import Scorer
from training.pipeline import holdout_split, train_model, validation_on

#: Tiny settings: each model's own training path, a few epochs.
MODELS: dict[str, dict[str, object]] = {
    "mult-dae": {"batch_size": 16},
    "u-autorec": {"hidden": 8, "batch_size": 16},
    "i-autorec": {"hidden": 8, "batch_size": 16},
    "cf-nade": {"hidden": 8, "batch_size": 16},
    # Without the refit of the users' rows after training: the recorded metrics are the
    # best epoch's, measured before it, and would differ from the refitted scorer's.
    "i-cf-nade": {"hidden": 8, "batch_size": 16, "refit_users": False},
    "bpr-mf": {"dim": 8, "batch_size": 64},
    "biased-mf": {"factors": 8, "batch_size": 64},
}


def ratings(n_users: int = 60, n_items: int = 30) -> Interactions:
    """Ratings 1..5 from two taste factors, 40% observed (the same on every rank)."""
    rng = np.random.default_rng(0)
    taste, style = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.4)
    raw = 3 + 1.2 * np.sum(taste[users] * style[items], axis=1) + rng.normal(0, 0.3, len(users))
    return Interactions.from_arrays(users, items, np.clip(np.rint(raw), 1, 5))


def digest(scorer: Scorer) -> str:
    sha = hashlib.sha256()
    for name, tensor in sorted(scorer.tensors().items()):
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def from_main_seen(rank: int) -> dict[str, object]:
    """What ``from_main`` gives this rank: which ranks ran the computation here, its
    answer, and what a computation that fails on rank 0 raises here."""
    ran: list[int] = []

    def ask() -> int:
        ran.append(rank)
        return 100 + rank  # each rank would answer its own

    def fail() -> int:
        ran.append(rank)
        raise ValueError("the database is away")

    answer = distributed.from_main(ask)
    try:
        distributed.from_main(fail)
        error = None
    except (ValueError, distributed.DistributedError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"ran": ran, "answer": answer, "error": error}


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)
    data = ratings()
    scorers: dict[str, Scorer] = {}
    record: dict[str, dict[str, object]] = {}
    with distributed.session():
        rank, size = distributed.rank(), distributed.world_size()
        record["_from_main"] = from_main_seen(rank)
        for name, settings in MODELS.items():
            result = train_model(name, data, {**settings, "epochs": 3, "patience": "none"})
            scorers[name] = result.scorer
            record[name] = {"digest": digest(result.scorer), "metrics": result.metrics}
    split = holdout_split(data)
    assert split is not None
    for name, scorer in scorers.items():
        whole = validation_on(model_class(name), data, *split)  # one process again
        record[name]["whole_slice"] = whole.evaluate(scorer)
    record["_world"] = {"rank": rank, "size": size}
    (out_dir / f"rank{rank}.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
