"""Iterative top-k models stop early on validation by default and keep the best epoch.

Issue 16.11: Mult-VAE / Mult-DAE ran every one of their 200 epochs although
only the best validation epoch is kept. Only sizes and the learning rate are
set here; ``epochs`` and ``patience`` are the defaults a user gets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from training.models.base import Validation
from training.models.mult_dae import MultDAE
from training.models.mult_vae import MultVAE

SMALL = {"hidden_dim": 16, "batch_size": 32, "lr": 0.01, "click_threshold": 3.5}


@pytest.mark.parametrize(
    ("cls", "sizes"), [(MultVAE, {"latent_dim": 8, "total_anneal_steps": 100}), (MultDAE, {})]
)
def test_default_training_stops_after_patience_validations_without_gain(
    structured: Any, hit_rate: Callable[..., float], cls: Any, sizes: dict[str, object]
) -> None:
    calls: list[float] = []

    def evaluate(scorer: Any) -> dict[str, float]:
        calls.append(hit_rate(scorer, structured.train, structured.heldout, 5))
        return {"hit@5": calls[-1]}

    config = cls.Config().with_overrides({**SMALL, **sizes})
    assert config.patience is not None, "early stopping must be on by default"
    model = cls(config)
    report = model.fit(structured.train, Validation(evaluate, "hit@5"))
    assert report.epochs_run < config.epochs  # stopped early ...
    assert report.epochs_run == report.best_epoch + config.patience  # ... patience after the best
    assert len(calls) == report.epochs_run
    assert report.best_metrics["hit@5"] == max(calls) == calls[report.best_epoch - 1]
    kept = hit_rate(model.to_scorer(), structured.train, structured.heldout, 5)
    assert kept == pytest.approx(max(calls))  # the best epoch's parameters are the ones kept
