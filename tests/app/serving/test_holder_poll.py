"""The model-reload poll outlives a poll that fails in an unforeseen way."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from app.core.metrics import Metrics
from app.serving.holder import ModelHolder
from models_store import ModelStore

#: Only waited in full by a test that is about to fail.
PATIENCE_S = 30.0


def test_a_poll_that_raises_something_unforeseen_does_not_end_the_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Choosing the default model caught store errors only: anything else raised out
    of the reload thread, and the server served the versions it had until restarted."""
    holder = ModelHolder(ModelStore(tmp_path / "store"), torch.device("cpu"), Metrics(), None, 0.01)
    resolve = holder.resolve_default
    calls: list[int] = []
    polled_again = threading.Event()

    def resolve_default() -> None:
        calls.append(1)
        if len(calls) == 2:  # the thread's first poll (the first call is ``start``'s)
            raise ValueError("a manifest this release cannot read")
        if len(calls) >= 3:
            polled_again.set()
        resolve()

    monkeypatch.setattr(holder, "resolve_default", resolve_default)
    holder.start()
    try:
        assert polled_again.wait(PATIENCE_S), "the reload thread ended at the failure"
    finally:
        holder.stop()
