"""Validation grid for ConvMF / PMF's lambda_U, lambda_V on the ``ratings-split`` protocol.

    OMP_NUM_THREADS=1 GENREC_DATA_DIR=../shared/data python benchmarks/convmf_grid.py \
        --model pmf --lambda-u 1 10 100 --lambda-v 1 10 100 [--set k=v ...] [--option k=v ...]

Selection is on the validation RMSE (the best iteration's, as the protocol
keeps it); the test RMSE is printed beside it only to report the chosen
setting, never to choose it. One line per setting, then the best by validation.
"""

from __future__ import annotations

import argparse
import time

import torch

from training.models.base import EpochReport
from training.protocols import protocol


def run_one(
    model: str, lam_u: float, lam_v: float, seed: int, sets: dict[str, str], opts: dict[str, str]
) -> dict[str, float]:
    """Best validation RMSE, its test RMSE, iterations and wall time for one setting."""
    valid: list[float] = []

    def collect(report: EpochReport) -> None:
        if report.metrics:
            valid.append(report.metrics["rmse"])

    overrides = {**sets, "lambda_u": str(lam_u), "lambda_v": str(lam_v)}
    t0 = time.perf_counter()
    rep = protocol("ratings-split").run(
        model, "ml-100k", seeds=[seed], overrides=overrides, callbacks=[collect], options=opts
    )
    run = rep.runs[0]
    return {
        "valid_rmse": min(valid),
        "test_rmse": run.metrics["rmse"],
        "best_iter": run.best_epoch,
        "iters": run.epochs_run,
        "seconds": time.perf_counter() - t0,
    }


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="convmf", choices=["convmf", "pmf"])
    parser.add_argument("--lambda-u", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    parser.add_argument("--lambda-v", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="model setting k=v")
    parser.add_argument("--option", action="append", default=[], help="protocol option k=v")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sets, opts = _pairs(args.set), _pairs(args.option)
    print(f"model {args.model}, seed {args.seed}, settings {sets}, options {opts}")
    print("| lambda_U | lambda_V | valid RMSE | test RMSE | best iter / run | wall s |")
    print("|---|---|---|---|---|---|")
    results = {}
    for lam_u in args.lambda_u:
        for lam_v in args.lambda_v:
            r = run_one(args.model, lam_u, lam_v, args.seed, sets, opts)
            results[(lam_u, lam_v)] = r
            print(
                f"| {lam_u:g} | {lam_v:g} | {r['valid_rmse']:.4f} | {r['test_rmse']:.4f} "
                f"| {r['best_iter']:.0f} / {r['iters']:.0f} | {r['seconds']:.0f} |",
                flush=True,
            )
    best = min(results, key=lambda key: results[key]["valid_rmse"])
    print(f"best by validation: lambda_u={best[0]:g} lambda_v={best[1]:g}")


if __name__ == "__main__":
    main()
