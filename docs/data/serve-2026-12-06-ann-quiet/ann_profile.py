"""Where an indexed batch's time goes at 1M items: the whole rank vs FAISS's search alone.

PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-06-ann-quiet/ann_profile.py /tmp/s1m [k]
"""

import cProfile
import pstats
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch

sys.path.insert(0, str(Path.cwd() / "benchmarks"))
from ann_sweep import _jobs

from app.core.config import Settings
from app.serving.batcher import rank_batch
from app.serving.loaded import build_loaded_model
from app.serving.retrieval import AnnLoader, _queries
from models_store import ModelStore

torch.set_num_threads(1)
faiss.omp_set_num_threads(1)
store = ModelStore(Path(sys.argv[1]))
k = int(sys.argv[2]) if len(sys.argv) > 2 else 10
version = store.resolve("mult-vae")
model = build_loaded_model(store.load("mult-vae", version), torch.device("cpu"))
model = AnnLoader(Settings(_env_file=None, ann="on"))(model)
ann = model.ann
print(f"nprobe {ann.nprobe} candidates {ann.candidates} k {k}")
jobs = _jobs(model, 1043, k)
B = 16
batches = [jobs[s : s + B] for s in range(0, len(jobs), B)]
rank_batch(model, batches[0])  # warm
for rnd in range(2):
    t = time.perf_counter()
    for batch in batches:
        rank_batch(model, batch)
    whole = (time.perf_counter() - t) / len(jobs) * 1000
    t = time.perf_counter()
    for batch in batches:
        q = _queries(model, batch, list(range(len(batch))))
        fetch = max(ann._fetch(j) for j in batch)
        ann.index.search(q, fetch)
    search = (time.perf_counter() - t) / len(jobs) * 1000
    print(f"round {rnd}: rank {whole:.2f} ms/user; FAISS search alone {search:.2f} ms/user")
fetches = [ann._fetch(j) for j in jobs]
print(f"fetch per job: median {np.median(fetches):.0f}, max {max(fetches)}")
ivf = faiss.extract_index_ivf(ann.index)
sizes = np.array([ivf.invlists.list_size(i) for i in range(ivf.nlist)])
q = _queries(model, jobs[:200], list(range(200)))
_, probed = ivf.quantizer.search(q, ivf.nprobe)
scanned = sizes[probed].sum(axis=1)
print(
    f"lists: {ivf.nlist}, sizes median {np.median(sizes):.0f} max {sizes.max()}; rows scanned per query median {np.median(scanned):.0f} mean {scanned.mean():.0f} max {scanned.max()}"
)
prof = cProfile.Profile()
prof.enable()
for batch in batches:
    rank_batch(model, batch)
prof.disable()
pstats.Stats(prof).sort_stats("tottime").print_stats(14)
