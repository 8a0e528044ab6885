"""Time of the boosts' covariance (``app.serving.ann_rules.table_covariance``) on a
1,000,000 x 257 float32 table, against a float64 pass over the whole table (the first
version's way), three runs each (the first run of a process also pays its page faults):

    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-05-ann-boosts/covariance_time.py
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from app.serving.ann_rules import table_covariance


class Table:
    """The table as a scorer's inner-product rows (what ``table_covariance`` reads)."""

    def __init__(self, table: Tensor) -> None:
        self.table = table

    def inner_product_table(self) -> Tensor:
        return self.table

    def inner_product_rows(self, start: int, stop: int) -> Tensor:
        return self.table[start:stop]

    def inner_product_queries(self, state: Tensor) -> Tensor:
        return state


table = torch.randn(1_000_000, 257, generator=torch.Generator().manual_seed(0))
for run in range(3):
    started = time.perf_counter()
    chunked = table_covariance(Table(table))
    print(f"run {run + 1}: table_covariance (chunked): {time.perf_counter() - started:.2f} s")
for run in range(3):
    started = time.perf_counter()
    centred = table.double() - table.double().mean(dim=0)
    whole = centred.T @ centred / table.shape[0]
    print(f"run {run + 1}: whole table in float64: {time.perf_counter() - started:.2f} s")
print(f"largest difference: {float((chunked - whole).abs().max()):.2e}")
