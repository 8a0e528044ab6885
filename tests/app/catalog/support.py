"""Helpers shared by the catalog tests (fixtures are in ``conftest.py``)."""

from __future__ import annotations

import threading

import torch

from app.catalog import TextItem
from app.core.metrics import Metrics
from app.serving.holder import ModelHolder
from app.serving.loaded import LoadedModel
from models_store import ModelStore
from tests.app.catalog_data import TextRatings


def cpu_holder(store: ModelStore) -> ModelHolder:
    """A holder over ``store`` on CPU, default model convmf, not started (no threads)."""
    return ModelHolder(store, torch.device("cpu"), Metrics(), default_model="convmf")


def held_out_items(data: TextRatings, stamp: str = "s1") -> list[TextItem]:
    """The items left out of training, as the catalog hands them over (all with text)."""
    return [TextItem(i, f"new {i}", text, stamp) for i, (_, text) in data.held_out.items()]


class PauseOnce:
    """A load listener added after the catalog's: on its first call it says so and waits
    until told to go on, holding the load between the catalog's listener and the install."""

    def __init__(self) -> None:
        self.listened = threading.Event()
        self.go_on = threading.Event()
        self.calls = 0

    def __call__(self, model: LoadedModel) -> LoadedModel:
        self.calls += 1
        if self.calls == 1:
            self.listened.set()
            assert self.go_on.wait(30), "the test never let the load go on"
        return model
