"""The replay of benchmarks/tune_pruning_check.py on hand-made curves (the real fits are in
docs/tuning.md, section (g)): what a pruner spends and whom it keeps."""

from __future__ import annotations

from benchmarks.tune_pruning_check import Curve, replay
from training.tuning.pruning import PerModelPruner


def _flat(value: float, epochs: int = 30) -> Curve:
    return Curve({}, [value] * epochs, [1.0] * epochs)


def test_a_slow_starter_survives_a_late_warm_up_and_dies_under_an_early_one() -> None:
    fast = [_flat(0.40), _flat(0.41), _flat(0.42)]
    slow = Curve({}, [0.10] * 10 + [0.50] * 20, [1.0] * 30)  # behind at epoch 3, best at the end
    curves = [*fast, slow]
    spent, kept = replay(curves, True, PerModelPruner(n_warmup_steps=20, percentile=75))
    assert kept == [0, 1, 2, 3] and spent == 120.0  # nothing pruned: every epoch of every curve
    spent, kept = replay(curves, True, PerModelPruner(n_warmup_steps=3, percentile=50))
    assert kept == [0, 1, 2]  # the best setting is gone
    assert spent == 90.0 + 3.0  # the slow one ran its three warm-up epochs
