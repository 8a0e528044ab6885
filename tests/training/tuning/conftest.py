from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.tuning.ml100k_slice import write_slice
from training.data.datasets import load_dataset
from training.data.interactions import Interactions


@pytest.fixture(scope="session")
def ml100k_slice(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Interactions:
    """150 real ML-100K users (~16k ratings, with timestamps)."""
    path = write_slice(data_dir, tmp_path_factory.mktemp("slice") / "ml100k-150.csv")
    return load_dataset(str(path))
