"""What an MMR re-rank costs one list, by k, on ML-100K models (in process, no server).

    GENREC_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/mmr_cost.py [--models ease,biased-mf]

Trains each model on ML-100K into a temporary store (a few seconds each), loads it as
the server does, and prints seconds per ``app.rules.diversity.diversify`` call with
``mmr=0.5`` for k = 10, 50, 100, 1000 (median of 3 calls, one user's score row with
nothing masked). The re-rank runs on the model's scoring thread, so while it runs every
other request for that model waits: this is the time a large MMR list holds them up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from app.rules.diversity import diversify
from app.serving.loaded import build_loaded_model
from models_store import ModelStore
from training.data.datasets import load_dataset
from training.models.base import History
from training.pipeline import train_and_save

OVERRIDES = {"biased-mf": {"epochs": 3}, "popularity": {}, "ease": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ease,biased-mf")
    parser.add_argument("--ks", default="10,50,100,1000")
    args = parser.parse_args()
    data = load_dataset("ml-100k")
    with tempfile.TemporaryDirectory() as root:
        store = ModelStore(Path(root))
        for name in args.models.split(","):
            manifest = train_and_save(store, name, data, OVERRIDES.get(name, {}), promote=True)
            model = build_loaded_model(store.load(name, manifest.version), torch.device("cpu"))
            user = 0
            with torch.inference_mode():
                state = model.scorer.user_state(
                    torch.tensor([user]), History.from_csr(model.history, [user])
                )
                row = model.scorer.score(state)[0].float()
            for k in (int(k) for k in args.ks.split(",")):
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    items, _ = diversify(model, row, k, None, 0.5)
                    times.append(time.perf_counter() - started)
                print(
                    f"{name:10s} k={k:5d} items={len(items):5d} "
                    f"mmr=0.5 {statistics.median(times):8.3f} s per list (median of 3)"
                )


if __name__ == "__main__":
    main()
