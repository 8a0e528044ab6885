"""Peak memory of building a saved version's indexes (``training.ann.build_for_scorer``, what
``save_trained`` runs after training) for the 1M x 256 Mult-VAE of a serve_bench store, in a
process of its own: before (5a96aa9: the whole table copied, each index serialised to bytes
and returned as bytes) and after (this tree: the table read a chunk at a time, each index
written to a file of the directory given).

    PYTHONPATH=<checkout> .venv/bin/python build_for_scorer_peak.py /tmp/s1m
"""

from __future__ import annotations

import inspect
import resource
import sys
import tempfile
import time
from pathlib import Path


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    from models_store import ModelStore
    from training import ann
    from training.models import stored_scorer

    store = ModelStore(sys.argv[1])
    loaded = store.load("mult-vae", store.resolve("mult-vae"))
    scorer = stored_scorer(
        loaded.manifest.model, loaded.manifest.scorer_config, loaded.contents.tensors
    )
    n_items = len(loaded.contents.item_ids)
    print(f"loaded {n_items:,} items; peak so far {peak_gib():.2f} GiB")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        if "directory" in inspect.signature(ann.build_for_scorer).parameters:
            built = ann.build_for_scorer(scorer, Path(directory), n_items)
        else:  # before: the files come back as bytes
            built = ann.build_for_scorer(scorer)  # type: ignore[call-arg]
        assert built is not None
        print(f"built {sorted(built[0])} in {time.perf_counter() - started:.0f} s")
    print(f"peak {peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
