"""Validation grid for any model on any protocol: the best validation figure per setting.

    OMP_NUM_THREADS=1 GENREC_DATA_DIR=../shared/data python benchmarks/validation_grid.py \
        --protocol strong-generalization --model mult-vae --seeds 0 1 2 \
        --set batch_size=100 --set total_anneal_steps=2000 \
        --grid "dropout=0.5" "dropout=0.6" "dropout=0.6 lr=0.0005 epochs=300"

Each ``--grid`` entry is one setting (space-separated ``key=value`` on top of
``--set``). For every setting and seed the protocol runs once; an epoch
callback records the selection metric on the validation split (the metric the
protocol keeps the epoch by: ``rmse`` for the rating protocols, ``ndcg@100``
for strong and ``ndcg@5`` for weak generalization), and the best of it is the
setting's validation figure. The protocol's test headline is printed beside it
only to report the chosen setting, never to choose it. The grids quoted in
docs/accuracy-topk.md and docs/accuracy-ratings.md are runs of this.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from training.key_values import parse_pairs
from training.models.base import EpochReport
from training.protocols import protocol

#: The validation metric each protocol selects epochs by, and whether lower is better.
SELECTION = {
    "ratings-random": ("rmse", True),
    "ratings-folds": ("rmse", True),
    "ratings-split": ("rmse", True),
    "strong-generalization": ("ndcg@100", False),
    "weak-generalization": ("ndcg@5", False),
}


def run_setting(
    name: str, model: str, seed: int, overrides: dict[str, str], data: str
) -> tuple[float, dict[str, float]]:
    """Best validation figure of one seed's run, and that run's test metrics."""
    metric, lower = SELECTION[name]
    seen: list[float] = []

    def collect(report: EpochReport) -> None:
        if metric in report.metrics:
            seen.append(report.metrics[metric])

    report = protocol(name).run(model, data, seeds=[seed], overrides=overrides, callbacks=[collect])
    if not seen:
        raise SystemExit(f"{model} reported no validation {metric}; is it an iterative model?")
    return (min(seen) if lower else max(seen)), report.runs[0].metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--protocol", required=True, choices=sorted(SELECTION))
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="ml-100k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", dest="sets", action="append", default=[], help="key=value")
    parser.add_argument("--grid", nargs="+", default=[""], help='settings, e.g. "l2=10 lr=0.01"')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    metric, lower = SELECTION[args.protocol]
    base = parse_pairs(args.sets)
    results = []
    for setting in args.grid:
        overrides = {**base, **parse_pairs(setting.split(), "--grid")}
        t0 = time.perf_counter()
        valid, tests = [], []
        for seed in args.seeds:
            best, test = run_setting(args.protocol, args.model, seed, overrides, args.data)
            valid.append(best)
            tests.append(test)
            print(
                f"  {setting or '(base)'} seed {seed}: validation {metric} {best:.4f}", flush=True
            )
        headline = {k: statistics.mean(t[k] for t in tests) for k in tests[0]}
        mean_valid = statistics.mean(valid)
        results.append((mean_valid, setting))
        shown = " ".join(f"{k} {v:.4f}" for k, v in headline.items())
        print(
            f"{setting or '(base)'}: validation {metric} {mean_valid:.4f} | test {shown} "
            f"| {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    best = (min if lower else max)(results)
    print(f"best by validation {metric}: {best[1] or '(base)'} ({best[0]:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
