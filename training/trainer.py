"""Epoch loop shared by every iterative model: validation, early stopping, best-epoch restore.

Models only say how to run one epoch and how to snapshot/restore their
parameters; the loop, the clock and the reporting live here once, so every
model reports progress the same way to the CLI and to retrain jobs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training import distributed
from training.allocator import keep_freed_memory

if TYPE_CHECKING:
    from training.models.base import EpochCallback, FitReport, Scorer, Validation

# The reports are imported where they are built, not here: importing
# ``training.models.base`` runs the model registry, whose models import this
# module, so a module-level import made ``from training.trainer import ...``
# fail in a fresh interpreter (circular import).


@dataclass
class EpochLoop:
    """How one model trains: an epoch step, and access to its parameters."""

    run_epoch: Callable[[int], dict[str, float]]  # epoch (1-based) -> losses
    to_scorer: Callable[[], Scorer]
    get_state: Callable[[], Any]  # snapshot of parameters (deep-copied by the trainer)
    set_state: Callable[[Any], None]


def fit_epochs(
    loop: EpochLoop,
    epochs: int,
    validation: Validation | None = None,
    callbacks: list[EpochCallback] | None = None,
    patience: int | None = None,
    validate_every: int = 1,
) -> FitReport:
    """Run up to ``epochs`` epochs; keep the parameters of the best validation epoch.

    Without validation the last epoch is kept. With ``patience``, training stops
    after that many validations without improvement. On several processes
    (``training.distributed``) the validation metric is already reduced across
    ranks, so every rank takes the same decisions and keeps the same epoch.
    """
    from training.models.base import EpochReport, FitReport

    keep_freed_memory()  # large per-step tensors reuse heap pages (training/allocator.py)
    callbacks = callbacks or []
    history: list[EpochReport] = []
    best_value = -math.inf
    best_epoch = 0
    best_metrics: dict[str, float] = {}
    best_state: Any = None
    stale = 0
    started = time.perf_counter()
    epochs_run = 0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        # On several processes each rank reports its own shard's losses; show their mean.
        losses = distributed.mean_across_ranks(loop.run_epoch(epoch))
        epochs_run = epoch
        metrics: dict[str, float] = {}
        is_best = validation is None
        if validation is not None and (epoch % validate_every == 0 or epoch == epochs):
            metrics = validation.evaluate(loop.to_scorer())
            value = metrics[validation.metric]
            value = value if validation.higher_is_better else -value
            if value > best_value:
                best_value, best_epoch, best_metrics = value, epoch, metrics
                best_state = copy.deepcopy(loop.get_state())
                is_best, stale = True, 0
            else:
                stale += 1
        if validation is None:
            best_epoch = epoch
        report = EpochReport(
            epoch=epoch,
            epochs=epochs,
            losses={k: float(v) for k, v in losses.items()},
            metrics=metrics,
            seconds=time.perf_counter() - t0,
            is_best=is_best,
        )
        history.append(report)
        for callback in callbacks:
            callback(report)
        if patience is not None and validation is not None and stale >= patience:
            break
    if best_state is not None:
        loop.set_state(best_state)
    return FitReport(
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        best_metrics=best_metrics,
        seconds=time.perf_counter() - started,
        history=history,
    )


def single_step_report(
    seconds: float,
    validation: Validation | None,
    scorer: Scorer,
    callbacks: list[EpochCallback] | None = None,
) -> FitReport:
    """FitReport for closed-form models (one 'epoch'), validated like the rest."""
    from training.models.base import EpochReport, FitReport

    metrics = validation.evaluate(scorer) if validation is not None else {}
    report = EpochReport(1, 1, {}, metrics, seconds, True)
    for callback in callbacks or []:
        callback(report)
    return FitReport(1, 1, metrics, seconds, [report])
