"""The winner of a search: refitted as ``genrec train`` would, gated as retraining is.

Shared by ``genrec tune`` and the tune job, so both save and gate the same way:
the fit holds out the pipeline's usual 10% per-user slice (it picks the
epoch and gives the manifest's metrics), production of the same model is
scored on that same slice, and ``app.retrain.gate.decide`` under the
``auto`` policy says whether the winner may be promoted.
"""

from __future__ import annotations

from typing import Any

import torch

from app.retrain.gate import decide, evaluate_production
from app.serving.loaded import ModelLoadError
from models_store import ModelStore, StoreError
from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import EpochCallback, Validation
from training.pipeline import TrainResult, holdout_validation, train_model


def refit_and_gate(
    store: ModelStore,
    model: str,
    overrides: dict[str, Any],
    data: Interactions,
    device: torch.device,
    callbacks: list[EpochCallback] | None = None,
) -> tuple[TrainResult, dict[str, Any]]:
    """Fit ``model`` with ``overrides`` on ``data``; the result and the gate's decision."""
    cls = model_class(model)
    seed = cls.Config().with_overrides(overrides).seed
    # The same per-user slice train_model holds out: the gate scores production on it.
    train_part, validation = holdout_validation(cls, data, seed=seed)
    result = train_model(model, data, overrides, callbacks=callbacks)
    gate = gate_winner(store, model, data, train_part, validation, result, device)
    return result, gate


def gate_winner(
    store: ModelStore,
    model: str,
    data: Interactions,
    train_part: Interactions,
    validation: Validation | None,
    result: TrainResult,
    device: torch.device,
) -> dict[str, Any]:
    """Retraining's gate (``app.retrain.gate``) under the ``auto`` policy."""
    production, error = None, None
    try:
        if validation is not None:
            production = evaluate_production(store, model, data, train_part, validation, device)
        elif store.alias_state(model) is not None:
            production = (str(store.alias_state(model)), {})
    except (StoreError, ModelLoadError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return decide(
        "auto", result.metric, result.higher_is_better, result.metrics, production, error
    ).to_dict()
