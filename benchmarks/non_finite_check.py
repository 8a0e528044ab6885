"""What the store's finiteness check costs a load, beside the checksum every load computes.

    .venv/bin/python benchmarks/non_finite_check.py

On a 1,000,000 x 256 float32 table (1 GB), prints seconds per call, three rounds, of
``models_store.non_finite`` (a chunk at a time), ``np.isfinite`` over the whole table
at once (a byte per element allocated; its first call also pays the page faults of that
allocation) and ``hashlib.sha256`` of the table's bytes (what ``ModelStore.load`` does
for every file).
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from models_store.contents import non_finite


def main() -> None:
    table = np.random.default_rng(0).standard_normal((1_000_000, 256), dtype=np.float32)
    for round_ in range(1, 4):
        started = time.perf_counter()
        non_finite({"table": table})
        chunked = time.perf_counter() - started
        started = time.perf_counter()
        bool(np.isfinite(table).all())
        whole = time.perf_counter() - started
        started = time.perf_counter()
        hashlib.sha256(table.data).hexdigest()
        digest = time.perf_counter() - started
        print(
            f"round {round_}: non_finite {chunked:.3f} s  isfinite(all at once) {whole:.3f} s  "
            f"sha256 {digest:.3f} s"
        )


if __name__ == "__main__":
    main()
