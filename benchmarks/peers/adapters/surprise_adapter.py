"""Surprise (Hug, JOSS 2020; ``scikit-surprise`` 1.1.5) on the shared split: SVD (biased MF).

Surprise's ``SVD`` is Funk/Koren biased MF trained by SGD in compiled code with
no per-epoch hook, so each epoch budget is a fresh fit with ``n_epochs`` = that
budget and a checkpoint's time is that one fit's. Predictions go through
Surprise's own ``predict`` (which clips into the rating scale and answers the
global mean for an unknown user or item); genrec then applies its own
unknown-pair rule to every library alike when it scores them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.peers.adapters.common import (
    Recorder,
    Split,
    adapter_args,
    read_split,
    set_threads,
    should_checkpoint,
)

MODELS = {"biased-mf": "SVD"}


def settings(epochs: int, seed: int) -> dict[str, Any]:
    """64 factors as genrec's biased-MF; Surprise's own learning rate and regularisation."""
    return {
        "n_factors": 64,
        "n_epochs": epochs,
        "biased": True,
        "lr_all": 0.005,
        "reg_all": 0.02,
        "random_state": seed,
    }


def trainset(split: Split) -> Any:
    import pandas as pd
    from surprise import Dataset, Reader

    part = split.parts["train"]
    frame = pd.DataFrame(
        {"user": part.users.astype(str), "item": part.items.astype(str), "rating": part.ratings}
    )
    low, high = split.meta["rating_range"]
    data = Dataset.load_from_df(frame, Reader(rating_scale=(low, high)))
    return data.build_full_trainset()


def predictions(algo: Any, split: Split) -> dict[str, np.ndarray]:
    out = {}
    for which in ("valid", "test"):
        part = split.parts[which]
        out[f"{which}_pred"] = np.array(
            [algo.predict(str(u), str(i)).est for u, i in zip(part.users, part.items, strict=True)]
        )
    return out


def main() -> int:
    args = adapter_args(__doc__.splitlines()[0], list(MODELS))
    set_threads(args.threads)
    split = read_split(args.split)
    import surprise
    from surprise import SVD

    params = settings(args.epochs, args.seed)
    recorder = Recorder(
        "surprise", args.model, split.protocol, params, {"scikit-surprise": surprise.__version__}
    )
    data = trainset(split)
    for budget in range(1, args.epochs + 1):
        if not should_checkpoint(budget, args.epochs, args.every):
            continue
        algo = SVD(**{**params, "n_epochs": budget})
        t0, c0 = time.perf_counter(), time.process_time()
        algo.fit(data)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        recorder.refit_checkpoint(budget, seconds, cpu, **predictions(algo, split))
    recorder.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
