"""``--set device=auto`` trains every registered model (tiny data, one epoch).

The overrides are strings, as ``genrec train --set key=value`` passes them to
``training.pipeline.train_model``, so this is the CLI's parsing path. ``auto``
must land on CUDA when torch sees one and on the CPU otherwise, for every
model: before the shared resolver, five models handed the raw string to torch.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from training.models import REGISTRY
from training.models.base import History
from training.pipeline import train_model

# One epoch and small sizes, for whichever of these settings a model has.
ONE_EPOCH = {
    "epochs": "1",
    "batch_size": "32",
    "hidden": "8",
    "hidden_dim": "8",
    "latent_dim": "4",
    "factors": "4",
    "dim": "4",
    "emb_dim": "8",
    "filters": "4",
    "proj_dim": "8",
    "cnn_epochs": "1",
    "patience": "none",
    "pretrain_epochs": "1",
    "gan_epochs": "1",
    "d_epochs": "1",
    "g_epochs": "1",
    "fold_in_steps": "2",
}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_device_auto_trains_every_model(name: str, structured) -> None:
    fields = {f.name for f in dataclasses.fields(REGISTRY[name].Config)}
    overrides = {k: v for k, v in ONE_EPOCH.items() if k in fields}
    if "device" in fields:
        overrides["device"] = "auto"
    result = train_model(name, structured.train, overrides)

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert result.scorer.config.get("device", "auto") == "auto"
    assert {t.device.type for t in result.scorer.t.values()} == {expected}
    assert result.report.epochs_run >= 1
    users = torch.arange(3)
    history = History.from_csr(structured.train.to_csr(), users.numpy())
    scores = result.scorer.score(result.scorer.user_state(users, history))
    assert scores.shape == (3, result.scorer.n_items)
    assert bool(torch.isfinite(scores).all())
