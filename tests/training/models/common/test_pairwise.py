"""BPR's triple sampler and positives (shared by BPR-MF and IRGAN's pre-training)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from training.data.interactions import Interactions
from training.models.base import ModelError
from training.models.common.pairwise import TripleSampler, positive_matrix


def test_sampled_negatives_are_never_positives() -> None:
    positives = sp.csr_matrix(np.eye(6, 8, dtype=np.float32) + np.eye(6, 8, k=1))
    sampler = TripleSampler(positives, np.random.default_rng(0))
    users = np.repeat(np.arange(6), 50)
    negatives = sampler.negatives(users, 3)
    assert negatives.shape == (300, 3)
    assert not positives[np.repeat(users, 3), negatives.ravel()].any()
    batches = sampler.epoch(batch_size=5)
    assert sum(len(u) for u, _ in batches) == len(sampler) == 12
    for u, i in batches:
        assert sampler.is_positive(u, i).all()


def test_threshold_keeps_only_liked_items() -> None:
    data = Interactions.from_arrays([1, 1, 2], [10, 11, 10], [5.0, 2.0, 4.0])
    assert positive_matrix(data, 3.5).nnz == 2
    with pytest.raises(ModelError, match="no positive interactions"):
        positive_matrix(data, 5.0)


def test_a_user_with_every_item_positive_has_no_triple_and_is_left_out() -> None:
    """Drawing a negative for such a user never ended: BPR-MF and IRGAN's pre-training hung
    at 100% CPU before their first epoch (and ``genrec tune`` ran past its budget)."""
    positives = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0], [0, 1, 0]], dtype=np.float32))
    sampler = TripleSampler(positives, np.random.default_rng(0))
    assert len(sampler) == 2 and 0 not in sampler.users  # user 0 has no j to rank against
    (users, _items), *_ = sampler.epoch(batch_size=100)
    assert not positives[np.repeat(users, 2), sampler.negatives(users, 2).ravel()].any()
    with pytest.raises(ModelError, match="every user with a positive has all 3 items"):
        TripleSampler(sp.csr_matrix(np.ones((2, 3), dtype=np.float32)), np.random.default_rng(0))
