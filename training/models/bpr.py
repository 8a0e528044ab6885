"""BPR-MF: matrix factorisation with item bias trained by Bayesian Personalized Ranking.

Paper: S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian
Personalized Ranking from Implicit Feedback", UAI 2009.

Serving card
------------
State (B, D)
    the user's factor row p_u for a known user; for an unknown user (or one with
    interactions after the cutoff) p_u is folded in: BPR-Opt over the user's
    positives against *all* their non-positives, with Q and b fixed, minimised
    by a monotone majorise-minimise Newton iteration (``fold_in_bpr``). It is
    deterministic (no sampling), so a cached state is reproducible.
Item tensors
    ``item_factors`` Q (I, D), ``item_bias`` b (I,); ``user_factors`` P (U, D) for
    known users.
Score (B, I)
    x̂_ui = <p_u, q_i> + b_i  (the MF predictor, section 4.3 / eq. for x̂_uij). Ranks
    only: BPR does not predict ratings.

Training: LearnBPR (section 4.2, Fig. 4) with uniform bootstrap sampling of (u, i, j)
triples -- one epoch draws as many triples as there are positive pairs -- and
mini-batch Adam instead of plain SGD. Optional dynamic negative sampling (DNS,
Zhang et al. SIGIR 2013: the best-scored of ``dns_k`` uniform candidates) is what
IRGAN uses to pre-train its generator; ``dns_k = 1`` is Rendle's uniform sampler.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from training.data.interactions import Interactions
from training.models.base import (
    EpochCallback,
    FitReport,
    History,
    Model,
    ModelConfig,
    ModelError,
    Scorer,
    Task,
    Validation,
    seed_everything,
)
from training.trainer import EpochLoop, fit_epochs

# --------------------------------------------------------------------------- config


@dataclass
class BPRConfig(ModelConfig):
    """BPR-MF hyper-parameters (tuned on an ML-100K validation split; see docs)."""

    dim: int = field(default=64, metadata={"help": "latent factors per user / item"})
    epochs: int = field(default=100, metadata={"help": "max epochs (|positives| triples each)"})
    batch_size: int = field(default=256, metadata={"help": "triples per Adam step"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate"})
    reg: float = field(
        default=1e-2, metadata={"help": "λ_Θ: L2 on p_u, q_i, q_j, b_i, b_j per triple"}
    )
    init_std: float = field(default=0.1, metadata={"help": "std of the N(0, σ²) factor init"})
    dns_k: int = field(
        default=1, metadata={"help": "negatives drawn per triple, best-scored kept (1 = uniform)"}
    )
    positive_threshold: float | None = field(
        default=None,
        metadata={"help": "explicit data: rating > this is a positive; None = every interaction"},
    )
    patience: int | None = field(
        default=10, metadata={"help": "stop after this many validations without improvement"}
    )
    validate_every: int = field(default=1, metadata={"help": "validate every N epochs"})
    fold_in_steps: int = field(
        default=30, metadata={"help": "majorise-minimise steps when folding in a new user"}
    )
    device: str = field(default="cpu", metadata={"help": "torch device for training"})

    def __post_init__(self) -> None:
        for name in ("dim", "epochs", "batch_size", "dns_k", "validate_every", "fold_in_steps"):
            if getattr(self, name) < 1:
                raise ModelError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.reg < 0 or self.init_std <= 0:
            raise ModelError("lr and init_std must be > 0 and reg >= 0")


# --------------------------------------------------------------------------- data helpers


def positive_matrix(train: Interactions, threshold: float | None) -> sp.csr_matrix:
    """(U, I) 0/1 matrix of positive pairs: rating > threshold on explicit data."""
    data = train.binarize(threshold if train.explicit else None)
    if len(data) == 0:
        raise ModelError(
            f"no positive interactions to train on (positive_threshold={threshold}); "
            "lower the threshold or pass implicit data"
        )
    return data.to_csr(values="ones")


class TripleSampler:
    """Uniform (u, i) over positive pairs, j over the user's non-positives (LearnBPR)."""

    def __init__(self, positives: sp.csr_matrix, rng: np.random.Generator) -> None:
        coo = positives.tocoo()
        self.users = coo.row.astype(np.int64)
        self.items = coo.col.astype(np.int64)
        self.n_items = positives.shape[1]
        # Sorted u*I+i keys make the "is j a positive of u" test one searchsorted.
        self._keys = np.sort(self.users * self.n_items + self.items)
        self.rng = rng

    def __len__(self) -> int:
        return len(self.users)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        pos = np.searchsorted(self._keys, keys).clip(max=len(self._keys) - 1)
        return self._keys[pos] == keys

    def negatives(self, users: np.ndarray, k: int) -> np.ndarray:
        """(len(users), k) items none of which is a positive of its user (rejection)."""
        out = self.rng.integers(0, self.n_items, size=(len(users), k))
        rows = np.repeat(users[:, None], k, axis=1)
        bad = self.is_positive(rows, out)
        while bad.any():
            out[bad] = self.rng.integers(0, self.n_items, size=int(bad.sum()))
            bad = self.is_positive(rows, out)
        return out

    def epoch(self, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """One epoch: |positives| bootstrap draws of (u, i), cut into batches."""
        draw = self.rng.integers(0, len(self.users), size=len(self.users))
        return [
            (self.users[draw[s : s + batch_size]], self.items[draw[s : s + batch_size]])
            for s in range(0, len(draw), batch_size)
        ]


# --------------------------------------------------------------------------- the MF module


class BiasedMF(torch.nn.Module):
    """x̂_ui = <p_u, q_i> + b_i: the predictor shared by BPR-MF and both IRGAN players."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user_factors = torch.nn.Parameter(torch.zeros(n_users, dim))
        self.item_factors = torch.nn.Parameter(torch.zeros(n_items, dim))
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))

    def init_normal(self, std: float) -> BiasedMF:
        with torch.no_grad():
            self.user_factors.normal_(0.0, std)
            self.item_factors.normal_(0.0, std)
            self.item_bias.zero_()
        return self

    def init_uniform(self, delta: float) -> BiasedMF:
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
        return self.user_factors[users] @ self.item_factors.T + self.item_bias

    def tensors(self, prefix: str = "") -> dict[str, Tensor]:
        return {
            f"{prefix}user_factors": self.user_factors.detach().cpu().clone(),
            f"{prefix}item_factors": self.item_factors.detach().cpu().clone(),
            f"{prefix}item_bias": self.item_bias.detach().cpu().clone(),
        }


def bpr_step(
    mf: BiasedMF,
    opt: torch.optim.Optimizer,
    sampler: TripleSampler,
    users_np: np.ndarray,
    items_np: np.ndarray,
    reg: float,
    dns_k: int,
) -> float:
    """One LearnBPR step on a batch; returns the mean -ln σ(x̂_uij) of the batch."""
    device = mf.item_bias.device
    cands = torch.as_tensor(sampler.negatives(users_np, dns_k), device=device)
    users = torch.as_tensor(users_np, device=device)
    items = torch.as_tensor(items_np, device=device)
    if dns_k > 1:  # DNS: keep the candidate the current model ranks highest
        with torch.no_grad():
            best = mf.pair_logits(users, cands).argmax(dim=1, keepdim=True)
        neg = cands.gather(1, best).squeeze(1)
    else:
        neg = cands[:, 0]
    x_uij = mf.pair_logits(users, items) - mf.pair_logits(users, neg)
    ranking = -torch.nn.functional.logsigmoid(x_uij).mean()  # BPR-Opt, eq. (4)/section 4.1
    penalty = (
        mf.user_factors[users].pow(2).sum(1)
        + mf.item_factors[items].pow(2).sum(1)
        + mf.item_factors[neg].pow(2).sum(1)
        + mf.item_bias[items].pow(2)
        + mf.item_bias[neg].pow(2)
    ).mean()
    loss = ranking + reg * penalty  # λ_Θ ||Θ||² per sampled triple
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(ranking.detach())


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


# --------------------------------------------------------------------------- scorer


class MFScorer(Scorer):
    """Serving form shared by MF-style top-k models: state p_u, score Q·s + b."""

    name: ClassVar[str] = "bpr-mf"

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
        q, b = self.t["item_factors"], self.t["item_bias"]
        if items is not None:
            items = items.to(q.device)
            q, b = q[items], b[items]
        return state.to(q.device) @ q.T + b

    def item_vectors(self) -> Tensor:
        return self.t["item_factors"]

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


# --------------------------------------------------------------------------- model


class BPRMF(Model):
    """BPR-MF (Rendle et al. 2009), selected on validation by ``fit_epochs``."""

    name: ClassVar[str] = "bpr-mf"
    task: ClassVar[Task] = "topk"
    Config: ClassVar[type[ModelConfig]] = BPRConfig
    scorer_cls: ClassVar[type[Scorer]] = MFScorer

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.mf: BiasedMF | None = None
        self._scorer_config: dict[str, Any] = {}

    @property
    def cfg(self) -> BPRConfig:
        assert isinstance(self.config, BPRConfig)
        return self.config

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        cfg = self.cfg
        rng = seed_everything(cfg.seed)
        positives = positive_matrix(train, cfg.positive_threshold)
        sampler = TripleSampler(positives, rng)
        self.mf = BiasedMF(train.n_users, train.n_items, cfg.dim).init_normal(cfg.init_std)
        self.mf.to(cfg.device)
        self._scorer_config = mf_scorer_config(self, train, cfg.reg)
        opt = torch.optim.Adam(self.mf.parameters(), lr=cfg.lr)
        mf = self.mf

        def run_epoch(epoch: int) -> dict[str, float]:
            losses = [
                bpr_step(mf, opt, sampler, u, i, cfg.reg, cfg.dns_k)
                for u, i in sampler.epoch(cfg.batch_size)
            ]
            return {"bpr": float(np.mean(losses))}

        loop = EpochLoop(
            run_epoch=run_epoch,
            to_scorer=self.to_scorer,
            get_state=lambda: copy.deepcopy(mf.state_dict()),
            set_state=mf.load_state_dict,
        )
        started = time.perf_counter()
        report = fit_epochs(
            loop, cfg.epochs, validation, callbacks, cfg.patience, cfg.validate_every
        )
        report.seconds = time.perf_counter() - started
        return report

    def to_scorer(self) -> Scorer:
        if self.mf is None:
            raise ModelError("bpr-mf: call fit() before to_scorer()")
        return MFScorer(self._scorer_config, self.mf.tensors())

    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I) the trained predictor x̂_u· for training users (history unused)."""
        if self.mf is None:
            raise ModelError("bpr-mf: call fit() before reference_scores()")
        with torch.no_grad():
            return self.mf.all_logits(users.to(self.mf.item_bias.device)).cpu()
