"""The winner of a search: refitted on all the data, gated as retraining is.

Shared by ``genrec tune`` and the tune job, so both save and gate the same way
(``training.tuning.refit``): the winner's settings are fitted as
``genrec train`` fits them, holding out the pipeline's usual 10% per-user
slice, and production of the same model is scored on that same slice;
``app.retrain.gate.decide`` under the ``auto`` policy says whether the
winner may be promoted (against a production fitted on all its data, on the
slice's records newer than its cutoff: ``app.retrain.gate.gate_figures``).
The version saved is the fit on all the data for the lengths (epochs)
validation chose, carrying the checked fit's figures.
"""

from __future__ import annotations

from typing import Any

import torch

from app.retrain.gate import gate_figures
from models_store import ModelStore
from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import EpochCallback
from training.pipeline import holdout_split
from training.tuning.refit import Refit, refit_winner


def refit_and_gate(
    store: ModelStore,
    model: str,
    overrides: dict[str, Any],
    data: Interactions,
    device: torch.device,
    lengths: dict[str, int] | None = None,
    callbacks: list[EpochCallback] | None = None,
) -> tuple[Refit, dict[str, Any]]:
    """Refit ``model`` with ``overrides`` on ``data`` (``lengths``: the validated length
    settings, ``training.tuning.refit``); the refit and the gate's decision on its
    checked fit."""
    seed = model_class(model).Config().with_overrides(overrides).seed
    refit = refit_winner(model, overrides, data, lengths, callbacks=callbacks)
    # The same per-user slice train_model held out of the checked fit: the gate's records.
    split = holdout_split(data, seed=seed)
    figures = gate_figures(store, model, data, split, refit.checked, device)
    gate = figures.decide("auto", refit.checked.metric, refit.checked.higher_is_better)
    return refit, gate.to_dict()
