"""The long-lived heap is frozen out of the garbage collector's scans after a model load."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from app.core.heap import freeze_long_lived
from models_store import ModelStore


def test_freezing_moves_every_live_object_to_the_permanent_generation() -> None:
    gc.unfreeze()
    long_lived = {"a": [1, 2]}  # a container: tracked by the collector
    try:
        assert any(o is long_lived for o in gc.get_objects())
        frozen = freeze_long_lived()
        assert frozen == gc.get_freeze_count() > 1000  # the interpreter, pytest, imports
        assert not any(o is long_lived for o in gc.get_objects())  # collections skip it now
    finally:
        gc.unfreeze()


def test_a_model_load_freezes_the_new_version(
    client: TestClient, store_dir: Path, train: Callable[..., str]
) -> None:
    holder = client.app.state.services.holder  # type: ignore[attr-defined]
    gc.unfreeze()
    try:
        train(ModelStore(store_dir), "mult-vae", seed=1)
        holder.poll_once()  # loads the promoted version now rather than on the reload thread
        loaded = holder.get("mult-vae")
        assert loaded.version == "2"
        assert not any(o is loaded for o in gc.get_objects())
    finally:
        gc.unfreeze()
