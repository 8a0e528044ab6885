"""Test accuracy of what ``genrec tune`` selects, on the accuracy docs' own protocols (issue #17).

    GENREC_DATA_DIR=../shared/data python benchmarks/tune_accuracy.py \\
        --task topk --seeds 0,1,2 --budget-minutes 20 --out tune-topk.json

Per split seed:

* ``--task topk``: the strong-generalization protocol's split of ML-100K
  (``training.protocols.strong_generalization``: clicks = ratings > 3.5 of
  users with >= 5 clicks; 150 validation + 150 test users; the item space of
  the training users), the split docs/accuracy-topk.md measured Mult-DAE's
  0.4351 and Mult-VAE's 0.4179 on.
* ``--task ratings``: the ratings-random protocol's 90/10 split
  (``training.protocols.ratings_random``), docs/accuracy-ratings.md's.

The search (``training.tuning.search.run_search``, what ``genrec tune`` runs)
gets only what is not test: the training and validation users' records (all
of them; tune makes its own validation split out of them) or the 90% of the
ratings. It chooses model and settings on its own validation split alone.
The winner is refitted as ``genrec tune`` refits it
(``training.tuning.refit``: on all the data tune saw, for the mean best epoch
of its validation fits), and only then is the refitted model measured on
the test part, by the protocol's own measurement: fold-in of the test users'
80%, NDCG@100 / Recall@20 / Recall@50 on their other 20%
(``strong_generalization.measure_test``); RMSE / MAE on the 10%, with the
90% as the users' history (``training.evaluate.evaluate_ratings``).

The search budget is wall-clock, so the machine's load matters: the load
average before and after each seed is recorded in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.data.interactions import Interactions
from training.evaluate import evaluate_ratings
from training.models.base import EpochReport
from training.protocols import ratings_random, strong_generalization
from training.protocols.common import DataSpec, load
from training.tuning.confirm import Finalist, Fold, fold_line
from training.tuning.refit import describe_lengths, refit_winner
from training.tuning.report import TrialRecord
from training.tuning.search import SearchResult, SearchSettings, run_search

HEADLINE = {"topk": strong_generalization.HEADLINE, "ratings": ratings_random.HEADLINE}
#: Which test figure the targets of issue #17 are stated in.
TARGET_METRIC = {"topk": "ndcg@100", "ratings": "rmse"}


def _say(message: str) -> None:
    print(message, flush=True)


def _on_trial(record: TrialRecord, seconds_left: float) -> None:
    value = "-" if record.value is None else f"{record.value:.4f}"
    fit = "" if record.fit_seconds is None else f" fit {record.fit_seconds:.1f}s"
    note = f" ({record.note})" if record.note else ""
    _say(
        f"  trial {record.number:>3} {record.model:<11} {record.state:<8} {value}{fit}"
        f"{note}  {seconds_left:.0f}s left"
    )


def _on_fold(finalist: Finalist, fold: Fold) -> None:
    _say(f"  {fold_line(finalist, fold)} (split seed {fold.split_seed})")


def _epoch_printer(every: int = 10) -> Any:
    def show(report: EpochReport) -> None:
        if report.epoch == 1 or report.epoch % every == 0 or report.epoch == report.epochs:
            figures = " ".join(f"{k}={v:.4f}" for k, v in sorted(report.metrics.items()))
            _say(f"    refit epoch {report.epoch}/{report.epochs} {figures}")

    return show


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _search(
    seen: Interactions, task: str, seed: int, args: argparse.Namespace
) -> tuple[SearchResult, float]:
    settings = SearchSettings(
        task=task,
        models=args.models,
        budget_seconds=args.budget_minutes * 60.0,
        max_trials=args.trials,
        seed=seed,
        confirm_folds=args.confirm_folds,
    )
    t0 = time.monotonic()
    result = run_search(seen, settings, on_trial=_on_trial, on_fold=_on_fold)
    return result, time.monotonic() - t0


def _refit(seen: Interactions, result: SearchResult) -> tuple[Any, dict[str, Any], float]:
    """The winner refitted as ``genrec tune`` refits it (``training.tuning.refit``): the
    checked fit (10% slice held out, its figures are the gate's) and the saved fit, on all
    the data for the lengths (epochs) validation chose; the saved one is what is measured."""
    winner = result.winner
    assert winner.settings is not None
    lengths = describe_lengths(winner.lengths)
    chosen = f" ({lengths})" if lengths else ""
    _say(f"  refitting the winner {winner.model} on everything the search saw{chosen} ...")
    t0 = time.monotonic()
    refit = refit_winner(
        winner.model, winner.settings, seen, winner.lengths, callbacks=[_epoch_printer()]
    )
    record = {
        **refit.record,
        "best_epoch": refit.final.report.best_epoch,
        "epochs_run": refit.final.report.epochs_run,
        "holdout_metrics": refit.checked.metrics,
    }
    return refit.final.scorer, record, time.monotonic() - t0


def _seed_record(
    seed: int,
    result: SearchResult,
    search_seconds: float,
    refit: dict[str, Any],
    refit_seconds: float,
    test: dict[str, float],
    load_before: list[float],
) -> dict[str, Any]:
    winner = result.winner
    return {
        "seed": seed,
        "winner": winner.model,
        "settings": winner.settings,
        "validation": {result.report["metric"]: winner.value},
        "confirmed": winner.confirmed,
        "confirmation": result.report.get("confirmation"),
        "test": test,
        "search_seconds": round(search_seconds, 1),
        "refit_seconds": round(refit_seconds, 1),
        "refit": refit,
        "trials": result.report["trials"],
        "leaderboard": [
            {"model": e.model, "validation": e.value, "confirmed": e.confirmed, "trials": e.trials}
            for e in result.board
        ],
        "tuning_split": result.report["split"],
        "load_average_before": load_before,
        "load_average_after": _load_average(),
    }


def run_topk(data_spec: DataSpec, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per seed: the strong-generalization split, tune on the non-test users."""
    opts = strong_generalization.Options.parse(
        {} if args.heldout_users is None else {"heldout_users": args.heldout_users}
    )
    data, n_heldout = strong_generalization.prepare(data_spec, args.data_dir, opts)
    runs = []
    for seed in args.seeds:
        load_before = _load_average()
        split = strong_generalization.split_users(data, n_heldout, opts, seed)
        seen = split.without_test().compact()  # the test users never reach the search
        if seen.n_items != split.train.n_items:
            raise SystemExit("internal: the item space changed when the test users were dropped")
        _say(
            f"seed {seed}: tune sees {len(seen)} clicks of {seen.n_users} users "
            f"({n_heldout} test users held back); load {load_before}"
        )
        result, search_seconds = _search(seen, "topk", seed, args)
        scorer, refit, refit_seconds = _refit(seen, result)
        test = strong_generalization.measure_test(split, scorer)
        runs.append(
            _seed_record(seed, result, search_seconds, refit, refit_seconds, test, load_before)
        )
        _say(_row("topk", runs[-1]))
        _write(args.out, args, runs)
    return runs


def run_ratings(data_spec: DataSpec, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per seed: the ratings-random 90/10 split, tune on the 90%."""
    opts = ratings_random.Options()
    data = ratings_random.explicit(load(data_spec, args.data_dir), ratings_random.NAME)
    runs = []
    for seed in args.seeds:
        load_before = _load_average()
        seen, test_part = ratings_random.split_ratings(data, opts, seed)
        _say(
            f"seed {seed}: tune sees {len(seen)} ratings ({len(test_part)} held back); "
            f"load {load_before}"
        )
        result, search_seconds = _search(seen, "ratings", seed, args)
        scorer, refit, refit_seconds = _refit(seen, result)
        # The refitted model's history is everything it saw, as the saved version's is.
        test = evaluate_ratings(scorer, seen.to_csr(), test_part, opts.default_rating)
        runs.append(
            _seed_record(seed, result, search_seconds, refit, refit_seconds, test, load_before)
        )
        _say(_row("ratings", runs[-1]))
        _write(args.out, args, runs)
    return runs


def _row(task: str, run: dict[str, Any]) -> str:
    figures = " ".join(f"{k}={run['test'][k]:.4f}" for k in HEADLINE[task])
    validation = next(iter(run["validation"].values()))
    return (
        f"seed {run['seed']}: {run['winner']} (validation {validation:.4f}) test {figures}; "
        f"search {run['search_seconds']:.0f}s refit {run['refit_seconds']:.0f}s"
    )


def summary(task: str, runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (0 for one seed) of each headline test figure."""
    out = {}
    for key in HEADLINE[task]:
        values = [float(r["test"][key]) for r in runs]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        out[key] = {"mean": statistics.fmean(values), "std": std}
    return out


def table(task: str, runs: Sequence[dict[str, Any]]) -> str:
    """A markdown table: one row per seed, then the mean ± std."""
    heads = HEADLINE[task]
    lines = [
        "| seed | winner | validation | " + " | ".join(f"test {h}" for h in heads) + " |",
        "|---" * (3 + len(heads)) + "|",
    ]
    for r in runs:
        validation = next(iter(r["validation"].values()))
        figures = " | ".join(f"{r['test'][h]:.4f}" for h in heads)
        lines.append(f"| {r['seed']} | {r['winner']} | {validation:.4f} | {figures} |")
    stats = summary(task, runs)
    figures = " | ".join(f"{stats[h]['mean']:.4f} ± {stats[h]['std']:.4f}" for h in heads)
    lines.append(f"| mean ± std | | | {figures} |")
    return "\n".join(lines)


def _write(path: Path | None, args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    """Written after every seed, so an interrupted run keeps what it measured."""
    if path is None:
        return
    payload = {
        "task": args.task,
        "data": args.data,
        "seeds": args.seeds,
        "models": args.models,
        "budget_minutes": args.budget_minutes,
        "trials": args.trials,
        "runs": runs,
        "summary": summary(args.task, runs),
        "command": " ".join(sys.argv),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float))


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=("topk", "ratings"), default="topk")
    parser.add_argument("--data", default="ml-100k", help="data set name or file")
    parser.add_argument("--data-dir", default=None, help="default: GENREC_DATA_DIR")
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="split seeds, e.g. 0,1,2")
    parser.add_argument("--budget-minutes", type=float, default=20.0)
    parser.add_argument("--models", type=_names, default=None, help="default: tune's defaults")
    parser.add_argument("--trials", type=int, default=None, help="stop each search sooner")
    parser.add_argument(
        "--confirm-folds", type=int, default=None, help="as genrec tune (default: by budget)"
    )
    parser.add_argument(
        "--heldout-users", type=int, default=None, help="topk: the protocol's option (tests)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, data: DataSpec | None = None) -> dict[str, Any]:
    """Run the measurement; ``data`` (an ``Interactions``) replaces ``--data`` in tests."""
    args = parse(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    spec: DataSpec = data if data is not None else args.data
    runs = run_topk(spec, args) if args.task == "topk" else run_ratings(spec, args)
    _say(table(args.task, runs))
    _write(args.out, args, runs)
    return {"runs": runs, "summary": summary(args.task, runs)}


if __name__ == "__main__":
    main()
