"""One query's top 101 by inner product over every row of a 1,000,000 x D float32 table,
one thread: torch's product and top-k (what the exact path does for one similar list)
against FAISS's brute-force scan (what an IVF index does when every list is searched),
on random rows; and torch's product for a batch of 16 queries (what the batcher's exact
path scores under load), per query.

    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-06-memory/scan_speed.py 256 600
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import faiss
import torch


def per_call_ms(call: Callable[[], object], repeats: int = 5) -> float:
    call()  # the first call pays page faults
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats * 1000


def measure(dims: int) -> None:
    table = torch.randn(1_000_000, dims, generator=torch.Generator().manual_seed(0))
    query = torch.randn(1, dims, generator=torch.Generator().manual_seed(1))
    rows, one = table.numpy(), query.numpy()
    exact = per_call_ms(lambda: torch.topk(query @ table.T, 101))
    scan = per_call_ms(lambda: faiss.knn(one, rows, 101, metric=faiss.METRIC_INNER_PRODUCT))
    batch = torch.randn(16, dims, generator=torch.Generator().manual_seed(2))
    batched = per_call_ms(lambda: torch.topk(batch @ table.T, 101)) / 16
    print(
        f"1,000,000 x {dims}: torch product + top-k {exact:.1f} ms, faiss.knn {scan:.1f} ms; "
        f"torch for a batch of 16, per query {batched:.1f} ms"
    )


def main() -> None:
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    for dims in sys.argv[1:]:
        measure(int(dims))


if __name__ == "__main__":
    main()
