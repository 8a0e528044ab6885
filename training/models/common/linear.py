"""The linear item scorer: s_u = state_u @ W[items]^T (+ b[items]).

The last item-indexed layer of most models is one dense product of the user's
state with an item table, plus an optional item bias:

* BPR-MF / IRGAN     x̂_ui = <p_u, q_i> + b_i      (Rendle et al. 2009, Sec. 4.3)
* Mult-VAE / DAE     logits = W_2 h_u + b_2        (Liang et al. 2018, eq. 1-2)
* U-AutoRec          h(r)_i = W_i g(V r + μ) + b_i (Sedhain et al. 2015, eq. 1)
* I-AutoRec          r̂_ui = w_u · code_i (+ the user's bias, added by the caller)
* biased MF, PMF / ConvMF   state @ items^T with the biases folded into the rows

Candidate scoring (``items``) selects rows before the product, so scoring C
candidates costs C rows, and its columns equal the full scores' columns.
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_item_scores(
    state: Tensor, weight: Tensor, bias: Tensor | None = None, items: Tensor | None = None
) -> Tensor:
    """(B, D) state, (I, D) item table, optional (I,) bias and (C,) items -> (B, I) or (B, C)."""
    if items is not None:
        items = items.to(weight.device)
        weight = weight[items]
        bias = None if bias is None else bias[items]
    scores = state.to(weight.device) @ weight.T
    return scores if bias is None else scores + bias


def biased_table(weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """(I, D) item table and optional (I,) bias -> (I, D+1) rows [w_i, b_i] (or the table).

    With ``ones_column`` on the query side, [s, 1] . [w_i, b_i] = s . w_i + b_i: the
    inner-product form an approximate index searches (``InnerProductScorer``).
    """
    if bias is None:
        return weight
    return torch.cat([weight, bias.reshape(-1, 1).to(weight.dtype)], dim=1)


def ones_column(state: Tensor) -> Tensor:
    """(B, D) -> (B, D+1) [state, 1]: the query side of ``biased_table``."""
    return torch.cat([state, torch.ones_like(state[:, :1])], dim=1)
