"""The similar-items index's calibration (``training.ann.calibrate_nprobe``) on the real
ML-100K models of a serve_bench store (1,682 items), beside the synthetic 1M catalog's.

    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-06-similar/calibration_ml100k.py /tmp/bench-store

Every list count tried, with the Recall@100 it reached on 200 sampled items, with the
default lists (about 4 sqrt(I), at most I/39: 43 here).
"""

from __future__ import annotations

import sys

from models_store import ModelStore
from training.ann import build_similarity_index, unit_rows
from training.models import stored_scorer


def main() -> None:
    store = ModelStore(sys.argv[1])
    for name in ("mult-vae", "biased-mf"):
        loaded = store.load(name, store.resolve(name, "production"))
        manifest = loaded.manifest
        scorer = stored_scorer(manifest.model, manifest.scorer_config, loaded.contents.tensors)
        vectors = scorer.item_vectors()
        assert vectors is not None
        unit = unit_rows(vectors.detach().float().numpy())
        _, params, calibration = build_similarity_index(unit)
        assert calibration is not None
        print(
            f"{name}: {params.n_items} items x {params.dims}, nlist {params.nlist}: "
            f"nprobe {params.nprobe}, tried {calibration.tried}"
        )


if __name__ == "__main__":
    main()
