"""Helpers shared by the catalog tests (fixtures are in ``conftest.py``)."""

from __future__ import annotations

import torch

from app.catalog import TextItem
from app.core.metrics import Metrics
from app.serving.holder import ModelHolder
from models_store import ModelStore
from tests.app.catalog_data import TextRatings


def cpu_holder(store: ModelStore) -> ModelHolder:
    """A holder over ``store`` on CPU, default model convmf, not started (no threads)."""
    return ModelHolder(store, torch.device("cpu"), Metrics(), default_model="convmf")


def held_out_items(data: TextRatings, stamp: str = "s1") -> list[TextItem]:
    """The items left out of training, as the catalog hands them over (all with text)."""
    return [TextItem(i, f"new {i}", text, stamp) for i, (_, text) in data.held_out.items()]
