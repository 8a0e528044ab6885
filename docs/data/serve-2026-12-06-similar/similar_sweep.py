"""Recall@100 of the similar-items index against exact cosine, and its search time, by
the number of IVF lists probed, on a serve_bench store (in process, one FAISS thread).

    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-06-similar/similar_sweep.py /tmp/s1m [BREADTHS]

BREADTHS: lists probed, comma-separated (default 32,64,...,2048).

Queries: 200 of the real ML-100K items (every 8th); the exact list of each is the top
101 cosines over the whole table (the item itself included, as in the index's answer).
"""

from __future__ import annotations

import sys
import time

import faiss
import numpy as np
import torch

from models_store import ModelStore
from training.ann import IndexParams, read_index
from training.models import stored_scorer


def main() -> None:
    store = ModelStore(sys.argv[1])
    loaded = store.load("mult-vae", store.resolve("mult-vae", "production"))
    manifest = loaded.manifest
    params = IndexParams.from_dict(manifest.retrieval["similar"])
    index = read_index(loaded.mapped[params.file], params)
    scorer = stored_scorer(manifest.model, manifest.scorer_config, loaded.contents.tensors)
    vectors = scorer.item_vectors()
    assert vectors is not None
    vectors = vectors.detach().float()
    norms = vectors.norm(dim=1).clamp_min(1e-12)
    items = np.arange(0, 1682, 8)[:200]
    queries = (vectors[items] / norms[items, None]).numpy()
    started = time.perf_counter()
    exact = [
        set(torch.topk((vectors @ torch.from_numpy(q)) / norms, 101).indices.tolist())
        for q in queries
    ]
    per_exact = (time.perf_counter() - started) / len(queries) * 1000
    print(
        f"{params.n_items:,} items x {params.dims}, nlist={params.nlist}; manifest nprobe {params.nprobe}"
    )
    print(f"exact cosine top-100: {per_exact:.1f} ms per query (1 torch thread)")
    ivf = faiss.extract_index_ivf(index)
    faiss.omp_set_num_threads(1)
    breadths = (32, 64, 128, 256, 512, 1024, 2048)
    if len(sys.argv) > 2:
        breadths = tuple(int(n) for n in sys.argv[2].split(","))
    for nprobe in breadths:
        ivf.nprobe = min(nprobe, ivf.nlist)
        started = time.perf_counter()
        _, labels = index.search(queries, 101)
        per = (time.perf_counter() - started) / len(queries) * 1000
        recall = np.mean(
            [len(set(row.tolist()) & e) / 101 for row, e in zip(labels, exact, strict=True)]
        )
        print(f"nprobe={ivf.nprobe}: Recall@100 {recall:.4f}, {per:.2f} ms per query")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
