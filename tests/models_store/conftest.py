"""Fixtures for the store tests: a fresh store root and small, seeded version contents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from store_helpers import build_contents, save_kwargs

from models_store import ModelStore


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_root: Path) -> ModelStore:
    return ModelStore(store_root)


@pytest.fixture
def saved(store: ModelStore) -> Callable[..., str]:
    """Save a seeded version of a model and return its version string."""

    def _save(model: str = "mult-vae", seed: int = 0) -> str:
        return store.save(model, build_contents(seed), **save_kwargs()).version

    return _save
