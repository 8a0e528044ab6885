"""How early can a trial be judged? The pruner's warm-up, chosen on validation data alone.

    GENREC_DATA_DIR=../shared/data PYTHONPATH=$PWD python benchmarks/tune_pruning_check.py \
        --task topk --models mult-vae --trials 40 --seed 0

For each model, ``--trials`` settings are drawn from its search space (Optuna's
``RandomSampler``, seeded) and each is fitted *to the end* (its own epoch cap
and early stopping, no pruning) on tune's validation split of the data tune
sees on the protocol's split ``--seed`` (the test users or ratings are never
read). Every epoch's validation figure is kept. Those curves are then replayed
through the pruner tune uses (``PerModelPruner``: Optuna's percentile pruner,
per model; percentile 50 is the median pruner, 75 keeps the top three
quarters) with several warm-ups, in ``--shuffles`` random orders
(``--curves FILE`` keeps the fits, so other pruners replay them without
fitting again), and for each pruner the table says:

* the share of the fitting time it spends (against fitting every trial to the end);
* how often the best of the drawn settings survives it (is not pruned);
* the mean best validation figure among the survivors, and how far that is
  behind the best of all (the pruner's regret).

A pruner that spends little and keeps the best is what the search wants; the
figures say at which epoch a model's curves have sorted themselves out.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna

from benchmarks.tune_refit_check import seen_data
from training.models import model_class
from training.models.base import EpochReport
from training.tuning.pruning import PerModelPruner
from training.tuning.split import tuning_split


@dataclass
class Curve:
    """One drawn setting fitted to the end: its validation figure and seconds per epoch."""

    settings: dict[str, object]
    values: list[float]
    seconds: list[float]

    def best(self, higher: bool) -> float:
        return max(self.values) if higher else min(self.values)


def draw_curves(
    task: str, model: str, trials: int, seed: int, data_dir: str | None
) -> tuple[list[Curve], bool]:
    """Fit ``trials`` random settings of ``model`` to the end; their curves and the metric's direction."""
    split = tuning_split(seen_data(task, data_dir, seed), task, None, None, seed)
    metric, higher = split.validation.metric, split.validation.higher_is_better
    cls = model_class(model)
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    curves: list[Curve] = []
    for n in range(trials):
        trial = study.ask()
        settings = cls.search_space.sample(trial, prefix=f"{model}.")
        curve = Curve(settings, [], [])

        def record(report: EpochReport, curve: Curve = curve) -> None:
            if metric in report.metrics:
                curve.values.append(float(report.metrics[metric]))
                curve.seconds.append(report.seconds)

        t0 = time.monotonic()
        cls(cls.Config().with_overrides(settings)).fit(split.train, split.validation, [record])
        study.tell(trial, 0.0)
        curves.append(curve)
        print(
            f"{model} {n + 1}/{trials}: {len(curve.values)} epochs, best {metric} "
            f"{curve.best(higher):.4f} at {curve.values.index(curve.best(higher)) + 1}, "
            f"{time.monotonic() - t0:.1f}s  {settings}",
            flush=True,
        )
    return curves, higher


def replay(
    curves: list[Curve], higher: bool, pruner: optuna.pruners.BasePruner
) -> tuple[float, list[int]]:
    """Run the curves through ``pruner`` in order: seconds spent, indices of the survivors."""
    direction = "maximize" if higher else "minimize"
    study = optuna.create_study(direction=direction, pruner=pruner)
    spent, survivors = 0.0, []
    for i, curve in enumerate(curves):
        trial = study.ask()
        trial.suggest_categorical("model", ["m"])
        pruned = False
        for step, (value, seconds) in enumerate(zip(curve.values, curve.seconds, strict=True), 1):
            spent += seconds
            trial.report(value, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned = True
                break
        if not pruned:
            study.tell(trial, curve.best(higher))
            survivors.append(i)
    return spent, survivors


def compare(
    curves: list[Curve], higher: bool, warmups: list[int], percentiles: list[float], shuffles: int
) -> None:
    total = sum(sum(c.seconds) for c in curves)
    bests = [c.best(higher) for c in curves]
    top = max(bests) if higher else min(bests)
    sign = 1.0 if higher else -1.0
    print(
        f"{len(curves)} settings fitted to the end in {total:.0f}s; best {top:.4f}, "
        f"median {statistics.median(bests):.4f}"
    )
    print("| pruner | time spent | best setting survives | best survivor (mean) | regret |")
    print("|---|---|---|---|---|")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for percentile in percentiles:
        for warmup in warmups:
            spent, kept, found = [], 0, []
            for s in range(shuffles):
                order = list(range(len(curves)))
                random.Random(s).shuffle(order)
                pruner = PerModelPruner(n_warmup_steps=warmup, percentile=percentile)
                seconds, survivors = replay([curves[i] for i in order], higher, pruner)
                spent.append(seconds / total)
                best_kept = max(sign * bests[order[i]] for i in survivors) * sign
                found.append(best_kept)
                kept += best_kept == top
            mean_found = statistics.fmean(found)
            print(
                f"| percentile {percentile:g}, warm-up {warmup} | {statistics.fmean(spent):.0%} "
                f"| {kept} of {shuffles} | {mean_found:.4f} | {sign * (top - mean_found):.4f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="topk", choices=["topk", "ratings"])
    parser.add_argument("--models", required=True, help="comma-separated model names")
    parser.add_argument("--trials", type=int, default=40, help="settings drawn per model")
    parser.add_argument(
        "--seed", type=int, default=0, help="protocol split seed (and sampler seed)"
    )
    parser.add_argument("--warmups", default="3,5,10,15,20", help="warm-ups (epochs) to replay")
    parser.add_argument("--percentiles", default="50,25", help="percentiles to replay (50: median)")
    parser.add_argument("--shuffles", type=int, default=50, help="random trial orders per pruner")
    parser.add_argument("--data-dir", default=None, help="default: GENREC_DATA_DIR")
    parser.add_argument(
        "--curves",
        type=Path,
        default=None,
        help="JSON file of fitted curves: replayed when it exists, else written after fitting",
    )
    args = parser.parse_args()
    warmups = [int(w) for w in args.warmups.split(",")]
    percentiles = [float(p) for p in args.percentiles.split(",")]
    saved = json.loads(args.curves.read_text()) if args.curves and args.curves.exists() else {}
    for model in args.models.split(","):
        if model in saved:
            curves = [Curve(**c) for c in saved[model]["curves"]]
            higher = bool(saved[model]["higher"])
        else:
            curves, higher = draw_curves(args.task, model, args.trials, args.seed, args.data_dir)
            saved[model] = {"higher": higher, "curves": [asdict(c) for c in curves]}
            if args.curves:
                args.curves.write_text(json.dumps(saved))
        print(f"\n## {model}, task {args.task}, split seed {args.seed}")
        compare(curves, higher, warmups, percentiles, args.shuffles)


if __name__ == "__main__":
    main()
