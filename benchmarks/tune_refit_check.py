"""What the refit costs ``genrec tune``'s choice: its top-k winner refitted several ways.

    GENREC_DATA_DIR=../shared/data python benchmarks/tune_refit_check.py --runs vae.json

``--runs`` is the JSON of ``benchmarks/tune_accuracy.py --task topk --out``. For
each seed in it, the selected model and settings are refitted on the same data
tune saw (the strong-generalization split less its test users) and scored on
the test users by the protocol's own ``measure_test``:

* as tune refits (``train_model``: a 10% per-user slice held out picks the epoch);
* the same with ``epochs`` fixed to the confirmation folds' mean best epoch;
* on all the data (``holdout=0``) for that many epochs, and for the refit's epoch;
* the model's defaults (with the search space's fixed epoch caps), refitted as tune refits.

A diagnostic for docs/tuning.md: the test figures are printed, never used to
choose anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from training.models import model_class
from training.models.common.search import Fixed
from training.pipeline import train_model
from training.protocols import strong_generalization as sg


def _variants(run: dict[str, Any]) -> list[tuple[str, dict[str, Any], float]]:
    """(label, settings, holdout fraction) of each refit."""
    settings = dict(run["settings"])
    winner = run["confirmation"]["finalists"][0]  # best mean first: the one tune selected
    space = model_class(run["winner"]).search_space
    caps = {k: p.dist.value for k, p in space.params.items() if isinstance(p.dist, Fixed)}
    epochs = [f["best_epoch"] for f in winner["folds"] if f.get("best_epoch")]
    folds_epoch = round(statistics.fmean(epochs)) if epochs else int(run["refit"]["best_epoch"])
    refit_epoch = int(run["refit"]["best_epoch"])
    fixed = {"patience": 10**6}
    return [
        ("as tune refits (10% per-user slice, early stopping)", settings, 0.1),
        (f"epochs={folds_epoch} (folds' mean best), 10% slice", {**settings, **fixed, "epochs": folds_epoch}, 0.1),
        (f"all data, epochs={folds_epoch}", {**settings, **fixed, "epochs": folds_epoch}, 0.0),
        (f"all data, epochs={refit_epoch} (the refit's)", {**settings, **fixed, "epochs": refit_epoch}, 0.0),
        ("the model's defaults (tune's epoch caps), as tune refits", caps, 0.1),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="tune_accuracy.py --out JSON")
    parser.add_argument("--data-dir", default=None, help="default: GENREC_DATA_DIR")
    args = parser.parse_args()
    record = json.loads(args.runs.read_text())
    opts = sg.Options.parse({})
    data, n_heldout = sg.prepare("ml-100k", args.data_dir, opts)
    print("| seed | refit | epoch kept | test NDCG@100 |")
    print("|---|---|---|---|")
    for run in record["runs"]:
        split = sg.split_users(data, n_heldout, opts, run["seed"])
        seen = split.without_test().compact()
        for label, settings, holdout in _variants(run):
            fitted = train_model(run["winner"], seen, settings, holdout=holdout)
            ndcg = sg.measure_test(split, fitted.scorer)["ndcg@100"]
            print(
                f"| {run['seed']} | {label} | {fitted.report.best_epoch} | {ndcg:.4f} |", flush=True
            )


if __name__ == "__main__":
    main()
