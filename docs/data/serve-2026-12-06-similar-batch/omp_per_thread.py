"""OpenMP keeps FAISS's thread count per thread: set on the main thread, a new thread
(a scoring thread) still sees OpenMP's default (one per core).

    .venv/bin/python docs/data/serve-2026-12-06-similar-batch/omp_per_thread.py
"""

from __future__ import annotations

import threading

import faiss

faiss.omp_set_num_threads(1)  # what build_services did, on the main thread
print(f"main thread after omp_set_num_threads(1): {faiss.omp_get_max_threads()}")
seen: list[int] = []
worker = threading.Thread(target=lambda: seen.append(faiss.omp_get_max_threads()))
worker.start()
worker.join()
print(f"a new thread: {seen[0]}")
