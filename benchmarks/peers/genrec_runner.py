"""genrec's side of the benchmark: a registry model on the shared split, timed like the peers.

``python -m benchmarks.peers.genrec_runner --split DIR --model mult-vae --epochs 100 --out DIR``

Runs in genrec's venv as its own process (so its peak RSS is measured like a
peer's). The model is fitted exactly as genrec's protocol fits it — same
validation (``topk_validation`` / ``rating_validation``), same selection — and
the kept epoch is measured with ``evaluate_topk`` / ``evaluate_ratings``. Every
library runs the whole epoch budget (no patience), so seconds per epoch cover
the same number of epochs; validation time is clocked separately and taken off
each epoch, so ``train_seconds`` is training alone, as for the peers.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.peers.split import read_interactions
from training.evaluate import evaluate_ratings, evaluate_topk, rating_validation, topk_validation
from training.key_values import parse_pairs
from training.models import model_class
from training.models.base import EpochReport, FitReport, Scorer, Validation

# Per protocol: the selection metric and the test measurement (genrec's protocol settings).
STRONG_KS = (20, 50, 100)
WEAK_KS = (5,)


@dataclass
class ClockedValidation:
    """Wraps a ``Validation`` so the seconds it spends are known and kept out of training time."""

    inner: Validation
    pending: float = 0.0
    pending_cpu: float = 0.0
    per_epoch: list[float] = field(default_factory=list)
    cpu_per_epoch: list[float] = field(default_factory=list)  # training CPU s, validation excluded
    _cpu_mark: float = field(default_factory=time.process_time)

    def as_validation(self) -> Validation:
        def run(scorer: Scorer) -> dict[str, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            result = self.inner.evaluate(scorer)
            self.pending += time.perf_counter() - t0
            self.pending_cpu += time.process_time() - c0
            return result

        return Validation(run, self.inner.metric, self.inner.higher_is_better)

    def on_epoch(self, report: EpochReport) -> None:
        """Epoch callback: book the validation seconds of this epoch and its training CPU time.

        CPU time runs from the previous callback (or from construction, just
        before ``fit``: model set-up counts against epoch 1, never in our favour).
        """
        now = time.process_time()
        self.cpu_per_epoch.append(max(now - self._cpu_mark - self.pending_cpu, 0.0))
        self.per_epoch.append(self.pending)
        self.pending, self.pending_cpu, self._cpu_mark = 0.0, 0.0, now


def _settings(model: str, epochs: int, every: int, seed: int, device: str) -> dict[str, str]:
    """Overrides: the epoch budget, validation cadence, no early stop (same budget as peers)."""
    fields = model_class(model).Config.describe()
    out: dict[str, str] = {"seed": str(seed)}
    if "epochs" in fields:
        out["epochs"] = str(epochs)
    if "patience" in fields:
        out["patience"] = "none"
    if "validate_every" in fields:
        out["validate_every"] = str(every)
    if "device" in fields:
        out["device"] = device
    return out


def _closed_form(model: str) -> bool:
    """A model without an epoch setting (EASE, popularity) is fitted in one step."""
    return "epochs" not in model_class(model).Config.describe()


def _fit(
    model: str, settings: dict[str, str], train: Any, clocked: ClockedValidation
) -> tuple[Scorer, FitReport]:
    cls = model_class(model)
    instance = cls(cls.Config().with_overrides(settings))
    report = instance.fit(train, clocked.as_validation(), [clocked.on_epoch])
    return instance.to_scorer(), report


def _checkpoints(
    report: FitReport, clocked: ClockedValidation, metric: str, closed_form: bool
) -> list[dict]:
    """Per epoch: cumulative training seconds (validation excluded) and the validation value.

    An iterative model's ``EpochReport.seconds`` includes its validation (the
    trainer validates inside the epoch), so the clocked validation time is taken
    off; a closed-form model's single report (``single_step_report``) never
    included it.
    """
    out, total, cpu = [], 0.0, 0.0
    pairs = zip(report.history, clocked.per_epoch, clocked.cpu_per_epoch, strict=True)
    for epoch_report, val_seconds, cpu_seconds in pairs:
        total += epoch_report.seconds if closed_form else max(epoch_report.seconds - val_seconds, 0)
        cpu += cpu_seconds
        row: dict[str, float] = {"epoch": epoch_report.epoch, "seconds": total, "cpu_seconds": cpu}
        if metric in epoch_report.metrics:
            row["valid"] = epoch_report.metrics[metric]
        out.append(row)
    return out


def run_strong(split: Path, model: str, settings: dict[str, str]) -> tuple[dict, FitReport, list]:
    train = read_interactions(split, "train", explicit=False).compact()
    n_items = read_interactions(split, "valid_heldout", explicit=False).n_items
    if train.n_items != n_items:
        raise ValueError("the strong split's training part must cover every item")
    part = lambda name: read_interactions(split, name, explicit=False).to_csr("ones")  # noqa: E731
    clocked = ClockedValidation(
        topk_validation(
            part("valid_fold_in"), part("valid_heldout"), "ndcg@100", recall_denominator="min"
        )
    )
    scorer, report = _fit(model, settings, train, clocked)
    metrics = evaluate_topk(
        scorer,
        part("test_fold_in"),
        part("test_heldout"),
        ks=STRONG_KS,
        metrics=("ndcg", "recall"),
        recall_denominator="min",
    )
    return metrics, report, _checkpoints(report, clocked, "ndcg@100", _closed_form(model))


def run_weak(split: Path, model: str, settings: dict[str, str]) -> tuple[dict, FitReport, list]:
    train = read_interactions(split, "train", explicit=False)
    history = train.to_csr("ones")
    valid = read_interactions(split, "valid", explicit=False).to_csr("ones")
    users = np.arange(train.n_users)
    clocked = ClockedValidation(topk_validation(history, valid, "ndcg@5", users=users))
    scorer, report = _fit(model, settings, train, clocked)
    test = read_interactions(split, "test", explicit=False).to_csr("ones")
    metrics = evaluate_topk(
        scorer,
        history,
        test,
        ks=WEAK_KS,
        metrics=("precision", "recall", "ndcg", "mrr"),
        users=users,
        exclude=(history + valid).tocsr(),
    )
    return metrics, report, _checkpoints(report, clocked, "ndcg@5", _closed_form(model))


def run_ratings(split: Path, model: str, settings: dict[str, str]) -> tuple[dict, FitReport, list]:
    train = read_interactions(split, "train", explicit=True)
    train_csr = train.to_csr()
    valid = read_interactions(split, "valid", explicit=True)
    # Unseen pairs get the split's own constant (meta ``default_rating``, AutoRec's 3), the
    # rule every library's predictions are scored by (``score.rating_metrics``).
    default = float(json.loads((split / "meta.json").read_text())["default_rating"])
    clocked = ClockedValidation(rating_validation(train_csr, valid, "rmse", default))
    scorer, report = _fit(model, settings, train, clocked)
    test = read_interactions(split, "test", explicit=True)
    metrics = evaluate_ratings(scorer, train_csr, test, default)
    return metrics, report, _checkpoints(report, clocked, "rmse", _closed_form(model))


RUNNERS: dict[str, Callable[[Path, str, dict[str, str]], tuple[dict, FitReport, list]]] = {
    "strong": run_strong,
    "weak": run_weak,
    "ratings": run_ratings,
    "text": run_ratings,  # the split's items carry their documents (read_interactions)
}


def run(
    split: Path,
    model: str,
    epochs: int,
    every: int,
    seed: int,
    out: Path,
    device: str = "cpu",
    extra: dict[str, str] | None = None,
) -> dict:
    """Fit and measure ``model`` on ``split``; write ``out/result.json``; return it.

    ``extra`` are further model settings (``--set bf16=true``), recorded in the result."""
    protocol = json.loads((split / "meta.json").read_text())["protocol"]
    settings = {**_settings(model, epochs, every, seed, device), **(extra or {})}
    metrics, report, checkpoints = RUNNERS[protocol](split, model, settings)
    result = {
        "peer": "genrec",
        "model": model,
        "protocol": protocol,
        "settings": settings,
        "versions": {"genrec": "this checkout", "torch": torch.__version__},
        "checkpoints": checkpoints,
        "epochs_trained": report.epochs_run,
        "train_seconds": checkpoints[-1]["seconds"] if checkpoints else 0.0,
        "train_cpu_seconds": checkpoints[-1]["cpu_seconds"] if checkpoints else 0.0,
        "best_epoch": report.best_epoch,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE")
    args = parser.parse_args(argv)
    extra = parse_pairs(args.sets)
    torch.set_num_threads(args.threads)
    run(args.split, args.model, args.epochs, args.every, args.seed, args.out, args.device, extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
