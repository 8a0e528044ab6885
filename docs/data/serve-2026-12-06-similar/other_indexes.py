"""Two alternatives to the similar-items index as built (IVF-flat, k-means lists), on the
synthetic catalog of a serve_bench store: Recall@100 against exact cosine and search time
by breadth, one FAISS thread, 200 real items (every 8th of the first 1,682) as queries.

    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-06-similar/other_indexes.py /tmp/s1m spherical
    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-06-similar/other_indexes.py /tmp/s1m hnsw 200000

``spherical``: IVF-flat whose lists are trained by spherical k-means, over all rows.
``hnsw N``: HNSW-flat (M 32, efConstruction 80) beside the IVF-flat as built, over the
first N rows only (HNSW on a million rows takes too long here).
"""

from __future__ import annotations

import sys
import time

import faiss
import numpy as np
import torch

from models_store import ModelStore
from training.ann import default_nlist, unit_rows
from training.models import stored_scorer


def recall(labels: np.ndarray, exact: list[set[int]]) -> float:
    return float(
        np.mean([len(set(row.tolist()) & e) / 101 for row, e in zip(labels, exact, strict=True)])
    )


def sweep(
    index: faiss.Index,
    queries: np.ndarray,
    exact: list[set[int]],
    label: str,
    breadths: tuple[int, ...],
) -> None:
    faiss.omp_set_num_threads(1)
    for breadth in breadths:
        if isinstance(index, faiss.IndexHNSWFlat):
            index.hnsw.efSearch = breadth
        else:
            faiss.extract_index_ivf(index).nprobe = breadth
        started = time.perf_counter()
        _, labels = index.search(queries, 101)
        per = (time.perf_counter() - started) / len(queries) * 1000
        print(
            f"{label} {breadth}: Recall@100 {recall(labels, exact):.4f}, {per:.2f} ms per query",
            flush=True,
        )


def ivf(unit: np.ndarray, spherical: bool) -> faiss.Index:
    n, d = unit.shape
    nlist = default_nlist(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.spherical = spherical
    index.train(unit[np.sort(np.random.default_rng(0).choice(n, min(n, nlist * 64), False))])
    index.add(unit)
    return index


def main() -> None:
    store = ModelStore(sys.argv[1])
    kind = sys.argv[2]
    loaded = store.load("mult-vae", store.resolve("mult-vae", "production"))
    manifest = loaded.manifest
    scorer = stored_scorer(manifest.model, manifest.scorer_config, loaded.contents.tensors)
    vectors = scorer.item_vectors()
    assert vectors is not None
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else vectors.shape[0]
    unit = unit_rows(vectors.detach().float().numpy()[:rows])
    del loaded, scorer, vectors
    queries = unit[np.arange(0, 1682, 8)[:200]]
    table = torch.from_numpy(unit)
    exact = [set(torch.topk(table @ torch.from_numpy(q), 101).indices.tolist()) for q in queries]
    faiss.omp_set_num_threads(2)
    started = time.perf_counter()
    if kind == "spherical":
        index = ivf(unit, spherical=True)
        print(f"spherical IVF over {rows:,} rows built in {time.perf_counter() - started:.1f} s")
        sweep(index, queries, exact, "spherical IVF nprobe", (32, 64, 128, 256, 512, 1024))
        return
    hnsw = faiss.IndexHNSWFlat(unit.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(unit)
    print(f"HNSW over {rows:,} rows built in {time.perf_counter() - started:.1f} s")
    sweep(hnsw, queries, exact, "HNSW efSearch", (64, 128, 256, 512))
    flat = ivf(unit, spherical=False)
    sweep(flat, queries, exact, "IVF nprobe", (16, 64, 256, default_nlist(rows) // 4))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
