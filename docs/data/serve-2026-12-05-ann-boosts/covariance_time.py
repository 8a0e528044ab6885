"""Time of the boosts' covariance (``app.serving.ann_rules.table_covariance``) on a
1,000,000 x 257 float32 table, against a float64 pass over the whole table (the first
version's way), three runs each (the first run of a process also pays its page faults):

    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-05-ann-boosts/covariance_time.py
"""

from __future__ import annotations

import time

import torch

from app.serving.ann_rules import table_covariance

table = torch.randn(1_000_000, 257, generator=torch.Generator().manual_seed(0))
for run in range(3):
    started = time.perf_counter()
    chunked = table_covariance(table)
    print(f"run {run + 1}: table_covariance (chunked): {time.perf_counter() - started:.2f} s")
for run in range(3):
    started = time.perf_counter()
    centred = table.double() - table.double().mean(dim=0)
    whole = centred.T @ centred / table.shape[0]
    print(f"run {run + 1}: whole table in float64: {time.perf_counter() - started:.2f} s")
print(f"largest difference: {float((chunked - whole).abs().max()):.2e}")
