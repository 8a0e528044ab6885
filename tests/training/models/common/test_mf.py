"""The shared MF's fold-in: BPR-Opt minimised with the item tables fixed."""

from __future__ import annotations

import itertools

import torch
from torch.nn.functional import softplus

from training.models.base import History
from training.models.common.mf import fold_in_bpr


def test_fold_in_minimises_the_bpr_objective() -> None:
    torch.manual_seed(0)
    q, b = torch.randn(30, 4), 0.1 * torch.randn(30)
    history = History.from_lists([[1, 4, 9]], None, 30)

    def objective(s: torch.Tensor) -> float:
        pos = torch.zeros(30, dtype=torch.bool)
        pos[[1, 4, 9]] = True
        x = q @ s + b
        return float(softplus(-(x[pos][:, None] - x[~pos][None, :])).mean() + 0.01 * s @ s)

    values = [
        objective(fold_in_bpr(q, b, history, reg=0.01, steps=n)[0]) for n in (0, 1, 3, 10, 40)
    ]
    assert all(later <= earlier + 1e-6 for earlier, later in itertools.pairwise(values))
    assert values[-1] < values[0] - 0.05
    again = fold_in_bpr(q, b, history, reg=0.01, steps=40)
    torch.testing.assert_close(again[0], fold_in_bpr(q, b, history, reg=0.01, steps=40)[0])
