"""What GENREC_ANN=auto and =on log for the two 50,000-item versions (run.sh's stores), in
process with the committed wording (server_log_lines.txt has the servers' lines, logged
during run.sh with an earlier wording of the same facts).

    PYTHONPATH=$PWD .venv/bin/python docs/data/ann-calibration-2026-12-07/loader_lines.py
"""

import logging
import sys

import torch

from app.core.config import Settings
from app.serving.loaded import build_loaded_model
from app.serving.retrieval import AnnLoader
from models_store import ModelStore

logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s", level=logging.INFO)
logging.getLogger("app.serving.retrieval").setLevel(logging.INFO)
for catalog in ("iid", "correlated"):
    store = ModelStore(f"/tmp/ann-bench/{catalog}-50k")
    model = build_loaded_model(store.load("mult-vae", "2"), torch.device("cpu"))
    for mode in ("auto", "on"):
        print(f"# {catalog}, GENREC_ANN={mode}")
        settings = Settings(_env_file=None, ann=mode, ann_auto_items=50_000)  # type: ignore[call-arg]
        opened = AnnLoader(settings)(model)
        print(f"# users' lists from the index: {opened.ann is not None}")
