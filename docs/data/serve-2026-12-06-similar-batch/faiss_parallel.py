"""One FAISS call for a batch of 20 similar-list queries against single-query calls side by side.

The 1M x 256 store's similar-items index (2,048 of 4,000 lists probed), memory-mapped,
random unit queries, 300 results each; wall seconds for all 20, two rounds:

    .venv/bin/python docs/data/serve-2026-12-06-similar-batch/faiss_parallel.py /tmp/s1m/mult-vae/versions/2/similar.faiss
"""

from __future__ import annotations

import sys
import threading
import time

import faiss
import numpy as np

QUERIES, FETCH, NPROBE = 20, 300, 2048


def main(path: str) -> None:
    index = faiss.read_index(path, faiss.IO_FLAG_MMAP)
    faiss.extract_index_ivf(index).nprobe = NPROBE
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((QUERIES, index.d)).astype("float32")
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index.search(queries[:2], FETCH)  # page the lists in

    def one_call(omp: int) -> float:
        took: list[float] = []

        def run() -> None:
            faiss.omp_set_num_threads(omp)  # OpenMP's count is per thread
            started = time.perf_counter()
            index.search(queries, FETCH)
            took.append(time.perf_counter() - started)

        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
        return took[0]

    def side_by_side(threads: int, omp: int) -> float:
        def run(rows: np.ndarray) -> None:
            faiss.omp_set_num_threads(omp)
            for row in rows:
                index.search(queries[row : row + 1], FETCH)

        workers = [
            threading.Thread(target=run, args=(rows,))
            for rows in np.array_split(np.arange(QUERIES), threads)
        ]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.perf_counter() - started

    for _ in range(2):
        print(
            f"one call of {QUERIES}: omp 1 {one_call(1):.3f} s, omp 2 {one_call(2):.3f} s; "
            f"2 threads of single calls: omp 1 {side_by_side(2, 1):.3f} s, "
            f"omp 2 {side_by_side(2, 2):.3f} s; {QUERIES} threads of one call (omp 2) "
            f"{side_by_side(QUERIES, 2):.3f} s"
        )


if __name__ == "__main__":
    main(sys.argv[1])
