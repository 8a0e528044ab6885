"""CF-NADE's network and cost, shared by CF-NADE and I-CF-NADE.

Zheng, Tang, Ding, Zhou, "A Neural Autoregressive Approach to Collaborative
Filtering", ICML 2016 (arXiv:1605.09477):

    h(r_{m_o<i}) = g(c + Σ_{j<i} W^{r_{m_oj}}_{:,m_oj})                   (eq. 4)
    s^k_{m_oi}   = b^k_{m_oi} + V^k_{m_oi,:} h(r_{m_o<i})                  (eq. 3)

with §3.2's sharing across rating levels (cumulative W and scores), §3.3's
factored output V^k = P^k Q, §3.4's ordinal cost and §3.5's second layer.
``cf_nade.py`` trains it on users' rating vectors; ``i_cf_nade.py`` on items'.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from training.data.interactions import Interactions


def ordinal_log_likelihood(scores: Tensor, target: Tensor) -> Tensor:
    """(N, K) scores, (N,) target levels -> (N,) log p_ord(r = target) (§3.4).

    The two products run from the target level down to 1 and up to K: each
    factor is the probability that level j beats every level between it and
    the far end, so the cost prefers mistakes near the true rating.
    """
    up = scores - torch.logcumsumexp(scores, dim=1)  # s^j − log Σ_{t≤j} e^{s^t}
    down = scores - torch.logcumsumexp(scores.flip(1), dim=1).flip(1)  # s^j − log Σ_{t≥j}
    up_sum = torch.cumsum(up, dim=1)  # Σ_{j≤k}
    down_sum = torch.cumsum(down.flip(1), dim=1).flip(1)  # Σ_{j≥k}
    pick = target[:, None]
    return (up_sum.gather(1, pick) + down_sum.gather(1, pick)).squeeze(1)


class CFNADENet(nn.Module):
    """Parameters of CF-NADE (W^k, c, V^k or P^k Q, b^k) and the computations shared by
    training and scoring. Rows are users for CF-NADE, items for I-CF-NADE."""

    def __init__(
        self, n_items: int, n_levels: int, hidden: int, n_layers: int, factored_rank: int | None
    ) -> None:
        super().__init__()
        scale = 1.0 / np.sqrt(hidden)
        self.input_weight = nn.Parameter(torch.randn(n_levels, n_items, hidden) * 0.01)  # W^k
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))  # c
        self.layer2 = nn.Linear(hidden, hidden) if n_layers == 2 else None
        if factored_rank is None:
            self.output_weight: nn.Parameter | None = nn.Parameter(
                torch.randn(n_levels, n_items, hidden) * scale
            )
            self.output_p = self.output_q = None
        else:
            rank = factored_rank
            self.output_weight = None
            self.output_p = nn.Parameter(torch.randn(n_levels, n_items, rank) / np.sqrt(rank))
            self.output_q = nn.Parameter(torch.randn(rank, hidden) * scale)
        self.output_bias = nn.Parameter(torch.zeros(n_levels, n_items))  # b^k

    @torch.no_grad()
    def init_output_bias(self, train: Interactions, values: np.ndarray) -> None:
        """Start at each item's log rating-level frequencies: with h ≈ 0 the model then
        predicts the item's own rating distribution, so the first epochs learn taste
        rather than item biases (an initialisation choice; the paper does not state one).
        """
        counts = np.ones((len(values), self.output_bias.shape[1]))  # +1 smoothing
        level_of = np.abs(train.ratings[:, None] - values[None, :]).argmin(axis=1)
        np.add.at(counts, (level_of, train.items), 1.0)
        log_freq = np.log(counts / counts.sum(axis=0, keepdims=True))
        # Cumulative scores s^k = Σ_{j≤k} b^j, so b is the first difference of log_freq.
        bias = np.diff(log_freq, axis=0, prepend=0.0)
        self.output_bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Weight decay on the weight tables only: decaying the item biases b^k under
        Adam would pull every rarely rated item's rating distribution towards uniform."""
        biases = [self.hidden_bias, self.output_bias]
        if self.layer2 is not None:
            biases.append(self.layer2.bias)
        ids = {id(p) for p in biases}
        weights = [p for p in self.parameters() if id(p) not in ids]
        return [
            {"params": weights, "weight_decay": weight_decay},
            {"params": biases, "weight_decay": 0.0},
        ]

    def cumulative_input(self) -> Tensor:
        """(K, I, H) Σ_{j≤k} W^j: the shared input weights (§3.2)."""
        return torch.cumsum(self.input_weight, dim=0)

    def cumulative_output(self) -> tuple[Tensor, Tensor]:
        """Σ_{j≤k} V^j (or Σ_{j≤k} P^j when factored) and Σ_{j≤k} b^j (§3.2)."""
        weight = self.output_weight if self.output_p is None else self.output_p
        assert weight is not None  # __init__ sets exactly one of V and P
        return torch.cumsum(weight, dim=0), torch.cumsum(self.output_bias, dim=0)


def hidden_pre_activation(
    cum_input: Tensor, bias: Tensor, rows: Tensor, items: Tensor, levels: Tensor, n_rows: int
) -> Tensor:
    """(B, H) c + Σ over the given (row, item, level) entries of Σ_{j≤k} W^j (eq. 4, §3.2)."""
    pre = bias.expand(n_rows, -1).clone()
    return pre.index_add(0, rows, cum_input[levels, items])


def activate(pre: Tensor, layer2: nn.Module | None) -> Tensor:
    """g = tanh on the pre-activation, then the second layer if there is one (§3.5)."""
    h = torch.tanh(pre)
    return torch.tanh(layer2(h)) if layer2 is not None else h


def hybrid_log_likelihood(scores: Tensor, target: Tensor, ordinal_weight: float) -> Tensor:
    """(N, K) cumulative scores, (N,) levels -> (N,) (1−λ) log p_reg + λ log p_ord (§3.4)."""
    regular = torch.log_softmax(scores, dim=1).gather(1, target[:, None]).squeeze(1)
    return (1 - ordinal_weight) * regular + ordinal_weight * ordinal_log_likelihood(scores, target)
