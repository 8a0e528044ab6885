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

``--validation MODEL,... [--settings JSON]`` instead compares the two refit rules on validation
data alone, as a rule should be chosen: on each of tune's three validation
splits of the seen data (split seeds ``seed``, ``seed+1``, ``seed+2``, as the
search and its confirmation draw them), the model at its first-trial
settings (or at ``--settings``, e.g. the settings a search chose) is fitted (a) as ``genrec train`` fits it, its 10% per-user slice
picking the epoch, and (b) on the whole training part for the mean best
epoch of the *other two* splits' validated fits
(``training.tuning.refit.final_fit``); both are scored on that split's
validation users (ratings). The test users (ratings) are never read.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from training.data.interactions import Interactions
from training.models import model_class
from training.models.common.search import Fixed
from training.pipeline import train_model
from training.protocols import ratings_random as rr
from training.protocols import strong_generalization as sg
from training.protocols.common import load
from training.tuning.objective import validated_fit
from training.tuning.pruning import EpochPruning
from training.tuning.refit import describe_lengths, final_fit, validated_lengths
from training.tuning.split import tuning_split


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


def seen_data(task: str, data_dir: str | None, seed: int) -> Interactions:
    """What tune sees on the protocol's split ``seed``: everything but the test part."""
    if task == "topk":
        opts = sg.Options.parse({})
        data, n_heldout = sg.prepare("ml-100k", data_dir, opts)
        return sg.split_users(data, n_heldout, opts, seed).without_test().compact()
    ratings = rr.explicit(load("ml-100k", data_dir), rr.NAME)
    return rr.split_ratings(ratings, rr.Options(), seed)[0]


def first_trial_settings(model: str) -> dict[str, Any]:
    """The settings of a model's first trial: its defaults, with the space's fixed caps."""
    cls = model_class(model)
    space = cls.search_space
    fixed = {k: p.dist.value for k, p in space.params.items() if isinstance(p.dist, Fixed)}
    return cls.Config().with_overrides(fixed).to_dict()


def compare_on_validation(
    task: str,
    models: list[str],
    seeds: list[int],
    data_dir: str | None,
    chosen: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Rule (a) against rule (b) on tune's own validation splits (see the module doc)."""
    print(
        "| model | seed | split seed | (a) slice picks the epoch | (b) all data, other splits' epochs | (b) - (a) |"
    )
    print("|---|---|---|---|---|---|")
    diffs: list[float] = []
    for model in models:
        settings = {k: v for k, v in first_trial_settings(model).items() if k != "device"}
        settings.update((chosen or {}).get(model, {}))
        for seed in seeds:
            seen = seen_data(task, data_dir, seed)
            splits = [tuning_split(seen, task, None, None, seed + k) for k in range(3)]
            best = []
            for split in splits:
                v = split.validation
                pruning = EpochPruning(None, v.metric, v.higher_is_better, time.monotonic, math.inf)
                best.append(validated_fit(model, settings, split, pruning)[2])
            for k, split in enumerate(splits):
                metric = split.validation.metric
                a = train_model(model, split.train, settings)
                lengths = validated_lengths([e for j, e in enumerate(best) if j != k])
                b = final_fit(model, settings, split.train, lengths)
                fa = split.validation.evaluate(a.scorer)[metric]
                fb = split.validation.evaluate(b.scorer)[metric]
                sign = 1.0 if split.validation.higher_is_better else -1.0
                diffs.append(sign * (fb - fa))
                print(
                    f"| {model} | {seed} | {seed + k} | {fa:.4f} (epoch {a.report.best_epoch}) "
                    f"| {fb:.4f} ({describe_lengths(lengths)}) | {fb - fa:+.4f} |",
                    flush=True,
                )
    wins = sum(d > 0 for d in diffs)
    print(
        f"(b) better in {wins} of {len(diffs)} (sign-adjusted mean gain "
        f"{statistics.fmean(diffs):+.4f}, sd {statistics.stdev(diffs) if len(diffs) > 1 else 0:.4f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, help="tune_accuracy.py --out JSON")
    parser.add_argument("--validation", help="models to compare the refit rules on validation")
    parser.add_argument("--task", default="topk", choices=["topk", "ratings"])
    parser.add_argument("--seeds", default="0", help="protocol split seeds, e.g. 0,1,2")
    parser.add_argument(
        "--settings",
        type=json.loads,
        default=None,
        help="with --validation: JSON {model: {setting: value}} over the first-trial settings",
    )
    parser.add_argument("--data-dir", default=None, help="default: GENREC_DATA_DIR")
    args = parser.parse_args()
    if args.validation:
        seeds = [int(s) for s in args.seeds.split(",")]
        compare_on_validation(
            args.task, args.validation.split(","), seeds, args.data_dir, args.settings
        )
        return
    if args.runs is None:
        parser.error("give --runs (test figures of a tune run) or --validation MODELS")
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
