"""serve_bench's store builder: a base store is copied as it is, never silently reshaped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.serve_bench import base_width, build_store
from models_store import ModelStore
from training.data.interactions import Interactions
from training.pipeline import train_and_save


def _base_store(root: Path, width: int) -> Path:
    rng = np.random.default_rng(0)
    users = [f"u{u}" for u in range(30) for _ in range(8)]
    items = [str(i) for i in rng.integers(0, 40, len(users))]
    data = Interactions.from_arrays(
        users, items, np.ones(len(users), np.float32), 1_600_000_000 + np.arange(len(users))
    )
    config = {"epochs": 1, "hidden_dim": width, "latent_dim": 4}
    train_and_save(ModelStore(root), "mult-vae", data, config, source="synthetic", promote=True)
    return root


def test_a_base_store_keeps_its_width_and_other_dims_are_refused(tmp_path: Path) -> None:
    base = _base_store(tmp_path / "base", width=12)
    assert base_width(ModelStore(base)) == 12
    with pytest.raises(SystemExit, match="--dims 16: the base store's mult-vae is 12 wide"):
        build_store(tmp_path / "wider", None, None, dims=16, base=base)
    assert not (tmp_path / "wider").exists()
    build_store(tmp_path / "same", None, None, dims=12, base=base)  # the base's own width
    assert base_width(ModelStore(tmp_path / "same")) == 12
