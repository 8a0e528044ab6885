"""Matrix factorisation with an item bias, shared by BPR-MF and IRGAN.

    x̂_ui = <p_u, q_i> + b_i        (Rendle et al., UAI 2009, Sec. 4.3)

``ItemBiasMF`` is the trainable net, ``MFScorer`` its serving form, and
``fold_in_bpr`` the user vector of a user the artifact has not seen: BPR-Opt
over their history with Q and b fixed (deterministic, so a cached state is
reproducible). Tensor names (``user_factors``, ``item_factors``, ``item_bias``)
are what stored artifacts hold; keep them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from training.data.interactions import Interactions
from training.models.base import History, Model, ModelError, Scorer
from training.models.common.linear import biased_table, linear_item_scores, ones_column

# --------------------------------------------------------------------------- the net


class ItemBiasMF(torch.nn.Module):
    """x̂_ui = <p_u, q_i> + b_i: MF with an item bias, the predictor of BPR-MF and IRGAN.

    Rendle et al. 2009, Sec. 4.3 (BPR's MF model); IRGAN's generator g_θ and
    discriminator f_φ are this same predictor (Wang et al. 2017, Sec. 3.2).
    Not the ``biased-mf`` model (``biased_mf.py``: Koren's mu + b_u + b_i + p_u.q_i).
    """

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user_factors = torch.nn.Parameter(torch.zeros(n_users, dim))
        self.item_factors = torch.nn.Parameter(torch.zeros(n_items, dim))
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))

    def init_normal(self, std: float) -> ItemBiasMF:
        with torch.no_grad():
            self.user_factors.normal_(0.0, std)
            self.item_factors.normal_(0.0, std)
            self.item_bias.zero_()
        return self

    def init_uniform(self, delta: float) -> ItemBiasMF:
        """U(-δ, δ) factors, zero bias: the IRGAN authors' initialisation."""
        with torch.no_grad():
            self.user_factors.uniform_(-delta, delta)
            self.item_factors.uniform_(-delta, delta)
            self.item_bias.zero_()
        return self

    def pair_logits(self, users: Tensor, items: Tensor) -> Tensor:
        """(N,) users, (N, ...) items -> x̂ of each pair, shape of ``items``."""
        p = self.user_factors[users]
        q = self.item_factors[items]
        if items.dim() == 2:
            return torch.einsum("nd,nkd->nk", p, q) + self.item_bias[items]
        return (p * q).sum(-1) + self.item_bias[items]

    def all_logits(self, users: Tensor) -> Tensor:
        """(B,) -> (B, I) scores over every item."""
        return linear_item_scores(self.user_factors[users], self.item_factors, self.item_bias)

    def tensors(self, prefix: str = "") -> dict[str, Tensor]:
        return {
            f"{prefix}user_factors": self.user_factors.detach().cpu().clone(),
            f"{prefix}item_factors": self.item_factors.detach().cpu().clone(),
            f"{prefix}item_bias": self.item_bias.detach().cpu().clone(),
        }


# --------------------------------------------------------------------------- fold-in


def fold_in_bpr(
    item_factors: Tensor,
    item_bias: Tensor,
    history: History,
    reg: float,
    steps: int,
    threshold: float | None = None,
) -> Tensor:
    """(B, D) user vectors maximising BPR-Opt on each history row with Q, b fixed.

    Objective per user: mean over (i ∈ pos, j ∉ pos) of softplus(-(x̂_ui - x̂_uj)) +
    reg·|s|². Its Hessian is bounded by H = ¼·M + 2·reg·I with M the mean of
    (q_i - q_j)(q_i - q_j)ᵀ (a D x D matrix, cheap), so s <- s - H⁻¹∇ decreases
    the loss at every step (majorise-minimise). No samples, hence deterministic.
    A row without positives keeps s = 0: the score falls back to the item bias.
    """
    q, b = item_factors, item_bias
    n_items, dim = q.shape
    out = torch.zeros(history.batch_size, dim, dtype=q.dtype, device=q.device)
    indptr = history.indptr.tolist()
    eye = torch.eye(dim, dtype=q.dtype, device=q.device)
    for row in range(history.batch_size):
        items = history.indices[indptr[row] : indptr[row + 1]].to(q.device)
        values = history.values[indptr[row] : indptr[row + 1]].to(q.device)
        if threshold is not None:
            items = items[values > threshold]
        mask = torch.zeros(n_items, dtype=torch.bool, device=q.device)
        mask[items] = True
        if not mask.any() or mask.all():
            continue
        qp, qn, bp, bn = q[mask], q[~mask], b[mask], b[~mask]
        mp, mn = qp.mean(0), qn.mean(0)
        second = qp.T @ qp / len(qp) + qn.T @ qn / len(qn)
        m = second - torch.outer(mp, mn) - torch.outer(mn, mp)
        h_inv = torch.linalg.inv(0.25 * m + 2 * reg * eye + 1e-6 * eye)
        s = torch.zeros(dim, dtype=q.dtype, device=q.device)
        for _ in range(steps):
            diff = (qp @ s + bp)[:, None] - (qn @ s + bn)[None, :]  # (P, N) x̂_ui - x̂_uj
            w = torch.sigmoid(-diff)  # -d softplus(-x)/dx
            grad = -(w.sum(1) @ qp - w.sum(0) @ qn) / w.numel() + 2 * reg * s
            s = s - h_inv @ grad
        out[row] = s
    return out


# --------------------------------------------------------------------------- serving form


class MFScorer(Scorer):
    """Serving form of ``ItemBiasMF`` (BPR-MF, IRGAN): state p_u, score Q·s + b.

    Subclasses name the model (``name``); the tensors are ``user_factors``,
    ``item_factors`` and ``item_bias``, as ``ItemBiasMF.tensors`` writes them.
    """

    table_tensors = frozenset({"item_factors", "item_bias"})  # ``InnerProductScorer``

    def user_state(self, users: Tensor, history: History) -> Tensor:
        p = self.t["user_factors"]
        users = users.to(p.device)
        state = torch.zeros(len(users), p.shape[1], dtype=p.dtype, device=p.device)
        known = users >= 0
        if known.any():
            if int(users.max()) >= p.shape[0]:
                raise ModelError(f"user index {int(users.max())} >= n_users {p.shape[0]}")
            state[known] = p[users[known]]
        unknown = (~known).nonzero().flatten()
        if len(unknown):
            rows = History.from_lists(*_rows(history, unknown.tolist()), history.n_items)
            state[unknown] = fold_in_bpr(
                self.t["item_factors"],
                self.t["item_bias"],
                rows.to(p.device),
                reg=float(self.config["fold_in_reg"]),
                steps=int(self.config["fold_in_steps"]),
                threshold=self._fold_in_threshold(),
            )
        return state

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, D), optional (C,) items -> x̂_ui = <s_u, q_i> + b_i, (B, I) or (B, C)."""
        return linear_item_scores(state, self.t["item_factors"], self.t["item_bias"], items)

    def item_vectors(self) -> Tensor:
        return self.t["item_factors"]

    def inner_product_table(self) -> Tensor:
        """(I, D+1) [q_i, b_i] (``InnerProductScorer``)."""
        return biased_table(self.t["item_factors"], self.t["item_bias"])

    def inner_product_rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of ``inner_product_table`` (``InnerProductScorer``)."""
        return biased_table(self.t["item_factors"][start:stop], self.t["item_bias"][start:stop])

    def inner_product_queries(self, state: Tensor) -> Tensor:
        """(B, D) -> (B, D+1) [p_u, 1]."""
        return ones_column(state)

    def _fold_in_threshold(self) -> float | None:
        """Histories carry ratings only when the model was trained on explicit data."""
        threshold = self.config.get("positive_threshold")
        if threshold is None or not self.config.get("trained_on_explicit", False):
            return None
        return float(threshold)


def _rows(history: History, rows: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Items and values of the selected history rows, as lists for ``from_lists``."""
    indptr = history.indptr.tolist()
    idx = history.indices.cpu().numpy()
    val = history.values.cpu().numpy()
    return (
        [idx[indptr[r] : indptr[r + 1]] for r in rows],
        [val[indptr[r] : indptr[r + 1]] for r in rows],
    )


def mf_scorer_config(model: Model, train: Interactions, fold_in_reg: float) -> dict[str, Any]:
    """Base config plus what fold-in needs: its L2 weight and how to read histories."""
    return {
        **model.base_scorer_config(train),
        "trained_on_explicit": bool(train.explicit),
        "fold_in_reg": float(fold_in_reg),
    }
