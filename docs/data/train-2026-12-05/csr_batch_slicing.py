"""Host time of one Mult-VAE training batch's slicing (``History.from_csr``: 500 users'
rows out of a 100,000 x 20,000 CSR click matrix of ~6.6 M clicks) and of its row ids
(``History.row_ids``), on the CPU, averaged over one epoch's 200 batches:

    PYTHONPATH=$PWD .venv/bin/python docs/data/train-2026-12-05/csr_batch_slicing.py
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from training.models.base import History

rng = np.random.default_rng(0)
users, items, clicks = 100_000, 20_000, 6_600_000
rows, cols = rng.integers(0, users, clicks), rng.integers(0, items, clicks)
matrix = sp.csr_matrix((np.ones(clicks, np.float32), (rows, cols)), shape=(users, items))
matrix.sum_duplicates()
order = rng.permutation(users)
steps = users // 500
started = time.perf_counter()
for start in range(0, users, 500):
    batch = History.from_csr(matrix, order[start : start + 500], "cpu")
slicing = (time.perf_counter() - started) / steps
started = time.perf_counter()
for _ in range(steps):
    batch.row_ids()
row_ids = (time.perf_counter() - started) / steps
print(
    f"{matrix.nnz:,} clicks; History.from_csr per batch of 500: {slicing * 1e3:.2f} ms "
    f"({slicing * steps * 1e3:.0f} ms an epoch of {steps}); row_ids: {row_ids * 1e3:.3f} ms"
)
