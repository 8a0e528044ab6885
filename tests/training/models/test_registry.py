"""The registry's ``stored_scorer``: a stored version's arrays used in place, never copied
twice (a million-item version would need that much more memory while it loads)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from safetensors.numpy import load, save

from training.models import ModelError, stored_scorer

CONFIG = {"n_items": 4, "fold_in_reg": 0.1, "fold_in_steps": 1}


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "user_factors": rng.standard_normal((2, 3)).astype(np.float32),
        "item_factors": rng.standard_normal((4, 3)).astype(np.float32),
        "item_bias": rng.standard_normal(4).astype(np.float32),
    }


def test_decoded_arrays_are_used_in_place() -> None:
    arrays = load(save(_arrays()))  # as the store's decoder gives them
    scorer = stored_scorer("bpr-mf", CONFIG, arrays)
    table = scorer.t["item_factors"]
    assert np.shares_memory(table.numpy(), arrays["item_factors"])
    torch.testing.assert_close(table, torch.from_numpy(_arrays()["item_factors"]))


def test_read_only_arrays_are_copied_without_a_warning() -> None:
    arrays = _arrays()
    for array in arrays.values():
        array.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on a non-writable array
        scorer = stored_scorer("bpr-mf", CONFIG, arrays)
    assert not np.shares_memory(scorer.t["item_factors"].numpy(), arrays["item_factors"])
    assert scorer.score(torch.zeros(1, 3)).shape == (1, 4)


def test_an_unknown_model_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="unknown model"):
        stored_scorer("nope", CONFIG, _arrays())
