"""IVF-flat vs IVF-SQ8 / IVF-fp16 codes (same lists) as the retrieval index at 1M x 257:
recall@100 of the served lists against the exact path, and ms per user, batches of 16.

    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-06-ann-quiet/index_types.py /tmp/s1m sq8,sqfp16
"""

import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch

sys.path.insert(0, str(Path.cwd() / "benchmarks"))
from ann_sweep import _jobs

from app.core.config import Settings
from app.serving.batcher import rank_batch, rank_exact
from app.serving.loaded import build_loaded_model
from app.serving.retrieval import AnnLoader
from models_store import ModelStore
from training.ann import scorer_rows

torch.set_num_threads(1)
faiss.omp_set_num_threads(1)
store = ModelStore(Path(sys.argv[1]))
version = store.resolve("mult-vae")
model = AnnLoader(Settings(_env_file=None, ann="on"))(
    build_loaded_model(store.load("mult-vae", version), torch.device("cpu"))
)
ann = model.ann
flat = ann.index
ivf = faiss.extract_index_ivf(flat)
jobs = _jobs(model, 1043, 100)
B = 16


def run(label):
    t = time.perf_counter()
    out = []
    for s in range(0, len(jobs), B):
        out += rank_batch(model, jobs[s : s + B])
    return out, (time.perf_counter() - t) / len(jobs) * 1000


t = time.perf_counter()
exact = []
for s in range(0, len(jobs), B):
    exact += rank_exact(model, jobs[s : s + B])
print(f"exact {(time.perf_counter() - t) / len(jobs) * 1000:.1f} ms/user", flush=True)


def recall(out):
    return np.mean(
        [
            len(set(a.items.tolist()) & set(e.items.tolist())) / max(len(e.items), 1)
            for a, e in zip(out, exact, strict=True)
        ]
    )


out, ms = run("flat")
print(f"ivf-flat nprobe {ann.nprobe}: recall@100 {recall(out):.4f} {ms:.2f} ms/user", flush=True)
rows = scorer_rows(model.scorer, model.n_items)
quantizer = faiss.downcast_index(ivf.quantizer)
q2 = faiss.IndexFlatIP(quantizer.d)
q2.add(quantizer.reconstruct_n(0, quantizer.ntotal))
for kind in sys.argv[2].split(","):
    t = time.perf_counter()
    if kind == "sq8":
        idx = faiss.IndexIVFScalarQuantizer(
            q2, rows.dims, ivf.nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
    elif kind == "sqfp16":
        idx = faiss.IndexIVFScalarQuantizer(
            q2, rows.dims, ivf.nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
    idx.by_residual = False
    sample = rows.take(np.sort(np.random.default_rng(0).choice(rows.n, 256000, False)))
    idx.train(sample)
    for _, chunk in rows.chunks():
        idx.add(chunk)
    build = time.perf_counter() - t
    idx.nprobe = ann.nprobe
    ann.index = idx
    out, ms = run(kind)
    print(
        f"{kind} nprobe {idx.nprobe}: recall@100 {recall(out):.4f} {ms:.2f} ms/user (built {build:.0f} s, codes {idx.code_size} B/row)",
        flush=True,
    )
    q2 = faiss.IndexFlatIP(quantizer.d)
    q2.add(quantizer.reconstruct_n(0, quantizer.ntotal))
