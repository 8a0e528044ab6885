"""The retrieval calibration on the test suite's two 3,000-item synthetic catalogs
(clustered, iid): the breadths tried and the recall at each, as recorded in the manifest.

Run from the repository root on either side of the masked-calibration change:
    PYTHONPATH=<tree> .venv/bin/python docs/data/ann-calibration-2026-12-07/masked_compare.py
(before: 37f3e3b, unmasked; after: 787bf05 or later, seen items masked as served).
"""

import tempfile
from pathlib import Path

from tests.app.serving.ann_catalog import N_ITEMS, scorer_with_users
from training.ann import build_for_scorer

for iid in (False, True):
    scorer, history = scorer_with_users(iid=iid)
    with tempfile.TemporaryDirectory() as folder:
        built = build_for_scorer(scorer, Path(folder), N_ITEMS, history=history, similar_nprobe=16)
    calibration = built[1]["calibration"]
    print(
        "iid" if iid else "clustered",
        "nlist",
        built[1]["nlist"],
        "nprobe",
        built[1]["nprobe"],
        calibration["tried"],
    )
