"""CF-NADE's ordinal cost (§3.4), shared by CF-NADE and I-CF-NADE."""

from __future__ import annotations

import torch

from training.models.common.nade import ordinal_log_likelihood


def test_ordinal_cost_matches_hand_computed_values() -> None:
    scores = torch.tensor([[0.5, -1.0]])
    # K = 2: the ordinal likelihood reduces to the ordinary softmax.
    target = torch.tensor([1])
    assert torch.allclose(
        ordinal_log_likelihood(scores, target), torch.log_softmax(scores, 1)[:, 1]
    )
    s = torch.tensor([[2.0, 0.3, -0.4]])
    # K = 3, target level 2 (index 1): up-terms j = 1, 2; down-terms j = 2, 3.
    lse = torch.logsumexp
    by_hand = (
        (s[0, 0] - s[0, 0])
        + (s[0, 1] - lse(s[0, :2], 0))
        + (s[0, 1] - lse(s[0, 1:], 0))
        + (s[0, 2] - s[0, 2])
    )
    assert torch.allclose(ordinal_log_likelihood(s, torch.tensor([1]))[0], by_hand)
