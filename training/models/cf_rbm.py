"""CF-RBM: Restricted Boltzmann Machines for Collaborative Filtering.

Salakhutdinov, Mnih, Hinton (ICML 2007). Every user is an RBM with one
K-way softmax visible unit per item they rated (all users share the weights)
and F binary hidden units:

    p(v_i^k = 1 | h) = exp(b_i^k + Σ_j h_j W_ij^k) / Σ_l exp(b_i^l + Σ_j h_j W_ij^l)   (eq. 1)
    p(h_j = 1 | V)   = σ(b_j + Σ_i Σ_k v_i^k W_ij^k)                                  (eq. 2)

trained with contrastive divergence (eq. 6):

    ΔW_ij^k = ε (<v_i^k h_j>_data − <v_i^k h_j>_T)

where <·>_T runs T steps of alternating Gibbs sampling from the data, with T
rising during training (1 → 3 → 5 → 9, ``cd_steps`` / ``cd_stage_epochs``),
momentum 0.9 and weight decay 0.001 on W as in the paper. The last
reconstruction uses the visible probabilities instead of a sample, which only
lowers the variance of the estimate. Missing ratings have no visible unit
and take no part in either phase.

Prediction (§2.2): p̂_j = p(h_j = 1 | V) for the user's observed ratings V,
then p(v_q^k = 1 | p̂) by eq. 1 with p̂ in place of h, and the expected
rating Σ_k value_k p(v_q^k = 1 | p̂).

Serving card (``cf-rbm``)
    State        (B, F)  p̂ = σ(b_h + Σ_{i ∈ rated} W_i^{r_i}): one upward pass, so
                         fold-in is the state itself.
    Item tensors weight W (I, K, F), visible_bias (I, K), hidden_bias (F,),
                 rating_values (K,).
    Score        (B, I)  Σ_k value_k softmax_k(b_i^k + W_i^k · p̂).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from training.data.interactions import Interactions
from training.device import resolve_device
from training.models.base import (
    EpochCallback,
    FitReport,
    History,
    Model,
    ModelConfig,
    ModelError,
    Scorer,
    Validation,
    seed_everything,
)
from training.models.common.search import Fixed, Float, Int, SearchSpace
from training.models.common.settings import TrainingConfig
from training.models.rating_levels import (
    check_history,
    expected_rating,
    level_index,
    rating_values,
    shuffled_batches,
)
from training.trainer import EpochLoop, fit_epochs


@dataclass
class CFRBMConfig(TrainingConfig):
    """Hyper-parameters of CF-RBM; defaults are the paper's where it gives them.

    ``lr`` is ε of eq. 6 (paper: 0.01); one update per batch of users.
    """

    batch_unit = "users"

    hidden: int = field(default=100, metadata={"help": "binary hidden units F (paper: 100)"})
    lr: float = 0.01
    momentum: float = field(default=0.9, metadata={"help": "momentum (paper: 0.9)"})
    weight_decay: float = field(
        default=0.001, metadata={"help": "weight decay on W (paper: 0.001)"}
    )
    batch_size: int = 100
    cd_steps: tuple[int, ...] = field(
        default=(1, 3, 5, 9), metadata={"help": "Gibbs steps T of CD-T, one per training stage"}
    )
    cd_stage_epochs: int = field(
        default=15, metadata={"help": "epochs per CD stage before T moves to the next value"}
    )
    epochs: int = 60
    patience: int | None = 15

    def check(self) -> None:
        super().check()
        _check_config(self)


#: Hidden units F, lr, momentum and weight decay (Salakhutdinov et al. 2007 Sec. 6);
#: the CD schedule is shortened so a trial fits a budget.
SEARCH_SPACE = SearchSpace(
    hidden=Int(20, 200, log=True),
    lr=Float(1e-3, 0.05, log=True),
    momentum=Float(0.5, 0.95),
    weight_decay=Float(1e-4, 1e-2, log=True),
    cd_stage_epochs=Fixed(10),
    epochs=Fixed(40),
    patience=Fixed(8),
)


def _check_config(cfg: CFRBMConfig) -> None:
    if cfg.hidden < 1:
        raise ModelError(f"hidden must be >= 1, got {cfg.hidden}")
    if not 0 <= cfg.momentum < 1 or cfg.weight_decay < 0:
        raise ModelError("momentum must lie in [0, 1) and weight_decay be >= 0")
    if not cfg.cd_steps or min(cfg.cd_steps) < 1 or cfg.cd_stage_epochs < 1:
        raise ModelError("cd_steps must be positive integers and cd_stage_epochs >= 1")


def hidden_probabilities(
    weight: Tensor, hidden_bias: Tensor, rows: Tensor, items: Tensor, visible: Tensor, n: int
) -> Tensor:
    """(n, F) p(h = 1 | V) (eq. 2) for visible units ``visible`` (nnz, K) at (row, item)."""
    pre = hidden_bias.expand(n, -1).clone()
    pre.index_add_(0, rows, torch.einsum("nk,nkf->nf", visible, weight[items]))
    return torch.sigmoid(pre)


def visible_logits(
    weight: Tensor, visible_bias: Tensor, rows: Tensor, items: Tensor, hidden: Tensor
) -> Tensor:
    """(nnz, K) logits of p(v_i^k = 1 | h) (eq. 1) at the given (row, item) entries."""
    return visible_bias[items] + torch.einsum("nkf,nf->nk", weight[items], hidden[rows])


@dataclass
class _Params:
    """RBM parameters and their momentum buffers (plain tensors: CD is not a gradient)."""

    weight: Tensor  # (I, K, F)
    visible_bias: Tensor  # (I, K)
    hidden_bias: Tensor  # (F,)

    def clone(self) -> _Params:
        return _Params(self.weight.clone(), self.visible_bias.clone(), self.hidden_bias.clone())


class CFRBMScorer(Scorer):
    """CF-RBM serving form: hidden probabilities in, expected rating out."""

    name: ClassVar[str] = "cf-rbm"
    predicts_ratings: ClassVar[bool] = True

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) users (the state depends only on history) + histories -> (B, F) p̂."""
        weight = self.t["weight"]
        check_history(history, weight.shape[0], self.name)
        history = history.to(weight.device)
        levels = self.t["rating_values"]
        visible = torch.nn.functional.one_hot(
            level_index(history.values, levels), levels.shape[0]
        ).float()
        return hidden_probabilities(
            weight,
            self.t["hidden_bias"],
            history.row_ids(),
            history.indices,
            visible,
            history.batch_size,
        )

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, F) -> (B, I) or (B, C): expected rating under eq. 1 with h = p̂."""
        weight, bias = self.t["weight"], self.t["visible_bias"]
        if items is not None:
            weight, bias = weight[items], bias[items]
        logits = torch.einsum("bf,ikf->bik", state, weight) + bias[None]
        return expected_rating(logits, self.t["rating_values"])

    def item_vectors(self) -> Tensor:
        """(I, K·F) the item's weights to the hidden units for every rating level."""
        w = self.t["weight"]
        return w.reshape(w.shape[0], -1)


class CFRBM(Model):
    """CF-RBM trained with CD-T, T rising during training."""

    name: ClassVar[str] = "cf-rbm"
    task: ClassVar = "ratings"
    fits_rating_values = True  # no reading of implicit data (``Model``)
    Config: ClassVar[type[ModelConfig]] = CFRBMConfig
    search_space = SEARCH_SPACE
    scorer_cls: ClassVar[type[Scorer]] = CFRBMScorer

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.params: _Params | None = None
        self.levels: Tensor | None = None
        self._scorer_config: dict[str, Any] = {}

    @property
    def cfg(self) -> CFRBMConfig:
        assert isinstance(self.config, CFRBMConfig)
        return self.config

    def cd_steps_at(self, epoch: int) -> int:
        """T of CD-T in ``epoch`` (1-based): the schedule's stage, then its last value."""
        stage = min((epoch - 1) // self.cfg.cd_stage_epochs, len(self.cfg.cd_steps) - 1)
        return self.cfg.cd_steps[stage]

    def _init_params(self, train: Interactions, levels: np.ndarray, device: torch.device) -> None:
        """Small random W; visible biases = log of each item's rating-level frequencies."""
        n_items, k = train.n_items, len(levels)
        counts = np.ones((n_items, k), dtype=np.float64)  # +1 smoothing for unseen levels
        level_of = np.abs(train.ratings[:, None] - levels[None, :]).argmin(axis=1)
        np.add.at(counts, (train.items, level_of), 1.0)
        freq = counts / counts.sum(axis=1, keepdims=True)
        self.params = _Params(
            weight=torch.randn(n_items, k, self.cfg.hidden, device=device) * 0.01,
            visible_bias=torch.as_tensor(np.log(freq), dtype=torch.float32, device=device),
            hidden_bias=torch.zeros(self.cfg.hidden, device=device),
        )

    def check_data(self, train: Interactions) -> None:
        """Explicit ratings with 2 to ``MAX_LEVELS`` distinct values (its softmax levels)."""
        rating_values(train, self.name)

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        """CD-T with momentum and weight decay; keep the epoch with the best validation RMSE."""
        cfg = self.cfg
        values = rating_values(train, self.name)
        rng = seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
        self.levels = torch.as_tensor(values, device=device)
        self._scorer_config = self.base_scorer_config(train)
        self._init_params(train, values, device)
        assert self.params is not None
        velocity = _Params(
            torch.zeros_like(self.params.weight),
            torch.zeros_like(self.params.visible_bias),
            torch.zeros_like(self.params.hidden_bias),
        )
        matrix = train.to_csr()
        users = np.flatnonzero(np.diff(matrix.indptr))

        def run_epoch(epoch: int) -> dict[str, float]:
            steps = self.cd_steps_at(epoch)
            squared, count = 0.0, 0
            for rows in shuffled_batches(len(users), cfg.batch_size, rng):
                batch = History.from_csr(matrix, users[rows], device=device)
                squared += self._cd_update(batch, steps, velocity)
                count += int(batch.indices.shape[0])
            return {"recon_rmse": (squared / max(count, 1)) ** 0.5, "cd_steps": float(steps)}

        loop = EpochLoop(
            run_epoch=run_epoch,
            to_scorer=self.to_scorer,
            get_state=lambda: self.params.clone() if self.params is not None else None,
            set_state=self._set_params,
        )
        return fit_epochs(loop, cfg.epochs, validation, callbacks, patience=cfg.patience)

    def _set_params(self, params: _Params) -> None:
        self.params = params

    @torch.no_grad()
    def _cd_update(self, batch: History, steps: int, velocity: _Params) -> float:
        """One CD-T update (eq. 6) on a batch of users; returns the reconstruction SSE."""
        assert self.params is not None and self.levels is not None
        p, cfg = self.params, self.cfg
        rows, items, n = batch.row_ids(), batch.indices, batch.batch_size
        k = self.levels.shape[0]
        v_data = torch.nn.functional.one_hot(level_index(batch.values, self.levels), k).float()
        h_data = hidden_probabilities(p.weight, p.hidden_bias, rows, items, v_data, n)
        h_sample = torch.bernoulli(h_data)
        recon = torch.zeros_like(batch.values)
        v_model, h_model = v_data, h_data
        for step in range(steps):
            v_prob = torch.softmax(
                visible_logits(p.weight, p.visible_bias, rows, items, h_sample), 1
            )
            last = step == steps - 1
            v_model = (
                v_prob
                if last
                else torch.nn.functional.one_hot(torch.multinomial(v_prob, 1).squeeze(1), k).float()
            )
            h_model = hidden_probabilities(p.weight, p.hidden_bias, rows, items, v_model, n)
            if step == 0:
                recon = v_prob @ self.levels
            if not last:
                h_sample = torch.bernoulli(h_model)
        # <v h>_data − <v h>_T, accumulated per item and averaged over the batch's users.
        stats = torch.einsum("nk,nf->nkf", v_data, h_data[rows]) - torch.einsum(
            "nk,nf->nkf", v_model, h_model[rows]
        )
        grad_w = torch.zeros_like(p.weight).index_add_(0, items, stats) / n
        grad_w -= cfg.weight_decay * p.weight
        grad_v = torch.zeros_like(p.visible_bias).index_add_(0, items, v_data - v_model) / n
        grad_h = (h_data - h_model).mean(dim=0)
        for name, grad in (("weight", grad_w), ("visible_bias", grad_v), ("hidden_bias", grad_h)):
            buffer = getattr(velocity, name).mul_(cfg.momentum).add_(grad, alpha=cfg.lr)
            getattr(p, name).add_(buffer)
        return float((recon - batch.values).square().sum())

    @torch.no_grad()
    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I) expected ratings with dense one-hot visibles: eq. 2 up, eq. 1 down."""
        if self.params is None or self.levels is None:
            raise ModelError(f"model '{self.name}' is not trained yet; call fit() first")
        p = self.params
        history = history.to(p.weight.device)
        k = self.levels.shape[0]
        one_hot = torch.nn.functional.one_hot(level_index(history.values, self.levels), k)
        visible = torch.zeros(history.batch_size, p.weight.shape[0], k, device=p.weight.device)
        visible[history.row_ids(), history.indices] = one_hot.float()  # (B, I, K), 0 = missing
        p_hat = torch.sigmoid(p.hidden_bias + torch.einsum("bik,ikf->bf", visible, p.weight))
        logits = torch.einsum("bf,ikf->bik", p_hat, p.weight) + p.visible_bias[None]
        return expected_rating(logits, self.levels)

    def to_scorer(self) -> CFRBMScorer:
        if self.params is None or self.levels is None:
            raise ModelError(f"model '{self.name}' is not trained yet; call fit() first")
        tensors = {
            "weight": self.params.weight.clone(),
            "visible_bias": self.params.visible_bias.clone(),
            "hidden_bias": self.params.hidden_bias.clone(),
            "rating_values": self.levels.clone(),
        }
        return CFRBMScorer(self._scorer_config, tensors)
