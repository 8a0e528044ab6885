"""The linear item scorer: full scores, candidate columns, with and without a bias."""

from __future__ import annotations

import torch

from training.models.common.linear import linear_item_scores


def test_scores_are_state_times_item_rows_plus_bias() -> None:
    gen = torch.Generator().manual_seed(0)
    state, weight, bias = (torch.randn(*s, generator=gen) for s in ((3, 4), (7, 4), (7,)))
    expected = torch.stack(
        [torch.stack([state[b] @ weight[i] + bias[i] for i in range(7)]) for b in range(3)]
    )
    torch.testing.assert_close(linear_item_scores(state, weight, bias), expected)
    torch.testing.assert_close(linear_item_scores(state, weight), expected - bias)


def test_candidates_are_the_full_scores_columns() -> None:
    gen = torch.Generator().manual_seed(1)
    state, weight, bias = (torch.randn(*s, generator=gen) for s in ((2, 5), (9, 5), (9,)))
    items = torch.tensor([8, 0, 3, 3])
    full = linear_item_scores(state, weight, bias)
    torch.testing.assert_close(linear_item_scores(state, weight, bias, items), full[:, items])
    torch.testing.assert_close(
        linear_item_scores(state, weight, items=items), (full - bias)[:, items]
    )
