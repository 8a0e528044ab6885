"""CPU of one ``compute_states`` call (Mult-VAE fold-in) by rows and calls, in process.

    GENREC_STORE_DIR=/tmp/bench-store PYTHONPATH=$PWD .venv/bin/python \
        docs/data/serve-2026-12-04-writes/foldin_call_cpu.py

One torch thread, a serve_bench store's Mult-VAE (ML-100K), 10-item histories; 2,000
repetitions after 200 warm-up ones, twice. The fixed part of a call is what one call
for two rows saves over two calls of one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from app.serving.loaded import build_loaded_model
from app.serving.state import compute_states
from models_store.store import ModelStore

torch.set_num_threads(1)
store = Path(os.environ.get("GENREC_STORE_DIR", "/tmp/bench-store"))
model = build_loaded_model(ModelStore(store).load("mult-vae", 1), torch.device("cpu"))


def per_round(calls: int, rows: int) -> float:
    """Microseconds of CPU for ``calls`` calls of ``rows`` rows each."""
    items = [[(r * 3 % 1600) + j for j in range(10)] for r in range(rows)]
    values = [[1.0] * 10 for _ in range(rows)]
    for _ in range(200):
        compute_states(model, [-1] * rows, items, values)
    started = time.process_time()
    for _ in range(2000):
        for _ in range(calls):
            compute_states(model, [-1] * rows, items, values)
    return (time.process_time() - started) / 2000 * 1e6


for _ in range(2):
    print(
        f"one call of 1 row: {per_round(1, 1):.0f} us; one call of 2: {per_round(1, 2):.0f} us; "
        f"two calls of 1: {per_round(2, 1):.0f} us; one call of 4: {per_round(1, 4):.0f} us"
    )
