"""CF-NADE: A Neural Autoregressive Approach to Collaborative Filtering.

Zheng, Tang, Ding, Zhou (ICML 2016, arXiv:1605.09477). A user's observed
ratings r_o, taken in an ordering o, are modelled autoregressively (eq. 1-4):

    p(r) = Π_i p(r_{m_oi} | r_{m_o<i})                                 (eq. 1)
    p(r_{m_oi} = k | r_{m_o<i}) = softmax_k s^k_{m_oi}(r_{m_o<i})       (eq. 2)
    s^k_{m_oi} = b^k_{m_oi} + V^k_{m_oi,:} h(r_{m_o<i})                  (eq. 3)
    h(r_{m_o<i}) = g(c + Σ_{j<i} W^{r_{m_oj}}_{:,m_oj})                   (eq. 4)

with the paper's refinements, each behind a config switch:

* parameter sharing across rating levels (§3.2): a rating k contributes
  Σ_{j≤k} W^j to the hidden input, and the scores are cumulative,
  s^k = Σ_{j≤k} (b^j + V^j h), so rarely used levels still learn;
* factored output (§3.3): V^k = P^k Q with P^k (I, J), Q (J, H) for large item
  sets (``factored_rank``);
* the ordinal cost (§3.4): log p_ord(k) = Σ_{j≤k} [s^j − log Σ_{t≤j} e^{s^t}]
  + Σ_{j≥k} [s^j − log Σ_{t≥j} e^{s^t}], trained with the hybrid cost
  (1 − λ) C_reg + λ C_ord (``ordinal_weight`` = λ);
* a deeper variant (§3.5): h^(2) = tanh(c^(2) + W^(2) h^(1)) (``n_layers`` = 2);
* g = tanh, 500 hidden units.

Training (§3.6, as NADE's order-agnostic training): for each user a random
ordering and a random split point i; the loss is the cost of the ratings
after the split given those before, scaled by the normalising factor
D / (D − i) (D ratings, i of them in the context), summed over the
mini-batch's users. Prediction conditions on *all* the user's observed
ratings and returns the expected rating E[r] = Σ_k k · p(r = k | r_o).

Serving card (``cf-nade``)
    State        (B, H)  a = c + Σ_{j ∈ rated} Σ_{k ≤ r_j} W^k_{:,j}: the summed
                         hidden pre-activation; fold-in is that sum, and a new
                         rating just adds one row.
    Item tensors output_weight (K, I, H) cumulative Σ_{j≤k} V^j (or output_p
                 (K, I, J) cumulative Σ_{j≤k} P^j and output_q (J, H)),
                 output_bias (K, I) cumulative Σ_{j≤k} b^j, rating_values (K,);
                 input_weight (K, I, H) cumulative W for fold-in.
    Score        (B, I)  Σ_k value_k · softmax_k(s^k), s^k = Vcum^k · φ(a) + bcum^k,
                 φ = tanh (then the second layer when n_layers = 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from training import distributed
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
from training.models.common.nade import (
    CFNADENet,
    activate,
    hidden_pre_activation,
    hybrid_log_likelihood,
)
from training.models.common.search import Choice, Fixed, Float, Int, SearchSpace
from training.models.common.settings import TrainingConfig
from training.models.rating_levels import (
    check_history,
    expected_rating,
    level_index,
    rating_values,
)
from training.trainer import EpochLoop, fit_epochs


@dataclass
class CFNADEConfig(TrainingConfig):
    """Hyper-parameters of CF-NADE; defaults follow the paper's ML-1M setting."""

    batch_unit = "users"

    hidden: int = field(default=500, metadata={"help": "hidden units per layer (paper: 500)"})
    n_layers: int = field(default=1, metadata={"help": "hidden layers: 1 or 2 (§3.5)"})
    factored_rank: int | None = field(
        default=None, metadata={"help": "J of the factored output V^k = P^k Q (§3.3); None = full"}
    )
    ordinal_weight: float = field(
        default=1.0, metadata={"help": "λ of the hybrid cost (1-λ)·C_reg + λ·C_ord (§3.4)"}
    )
    lr: float = 1e-3
    weight_decay: float = field(default=0.015, metadata={"help": "L2 weight decay"})
    batch_size: int = 64
    epochs: int = 100
    patience: int | None = 15

    def check(self) -> None:
        super().check()
        _check_config(self)


#: Width and lr (the two that moved validation RMSE, docs/accuracy-ratings.md),
#: weight decay and depth.
SEARCH_SPACE = SearchSpace(
    hidden=Int(50, 500, log=True),
    lr=Float(1e-4, 3e-3, log=True),
    weight_decay=Float(1e-4, 0.05, log=True),
    n_layers=Choice((1, 2)),
    epochs=Fixed(50),
    patience=Fixed(8),
)


def _check_config(cfg: CFNADEConfig) -> None:
    if cfg.n_layers not in (1, 2):
        raise ModelError(f"n_layers must be 1 or 2, got {cfg.n_layers}")
    if cfg.hidden < 1 or (cfg.factored_rank is not None and cfg.factored_rank < 1):
        raise ModelError("hidden and factored_rank must be positive")
    if not 0.0 <= cfg.ordinal_weight <= 1.0:
        raise ModelError(f"ordinal_weight λ must lie in [0, 1], got {cfg.ordinal_weight}")
    if cfg.weight_decay < 0:
        raise ModelError(f"weight_decay must be >= 0, got {cfg.weight_decay}")


class CFNADEScorer(Scorer):
    """CF-NADE serving form: summed pre-activation in, expected rating out."""

    name: ClassVar[str] = "cf-nade"
    predicts_ratings: ClassVar[bool] = True

    def _layer2(self) -> nn.Module | None:
        if "layer2_weight" not in self.t:
            return None
        w, b = self.t["layer2_weight"], self.t["layer2_bias"]
        return lambda h: h @ w.T + b  # type: ignore[return-value]

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) users (the state depends only on history) + histories -> (B, H)."""
        cum_input = self.t["input_weight"]
        check_history(history, cum_input.shape[1], self.name)
        history = history.to(cum_input.device)
        levels = level_index(history.values, self.t["rating_values"])
        return hidden_pre_activation(
            cum_input,
            self.t["hidden_bias"],
            history.row_ids(),
            history.indices,
            levels,
            history.batch_size,
        )

    def level_scores(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, H) -> (B, I|C, K) the cumulative scores s^k (eq. 3 with §3.2 sharing)."""
        h = activate(state, self._layer2())
        bias = self.t["output_bias"] if items is None else self.t["output_bias"][:, items]
        if "output_q" in self.t:
            p = self.t["output_p"] if items is None else self.t["output_p"][:, items]
            s = torch.einsum("bj,kij->bik", h @ self.t["output_q"].T, p)
        else:
            v = self.t["output_weight"] if items is None else self.t["output_weight"][:, items]
            s = torch.einsum("bh,kih->bik", h, v)
        return s + bias.T[None]

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, H) -> (B, I) or (B, C): E[r] = Σ_k value_k p(r = k | r_o)."""
        return expected_rating(self.level_scores(state, items), self.t["rating_values"])

    def item_vectors(self) -> Tensor:
        """(I, K·H) or (I, K·J): the item's output weights over all levels."""
        v = self.t["output_p"] if "output_q" in self.t else self.t["output_weight"]
        return v.permute(1, 0, 2).reshape(v.shape[1], -1)


class CFNADE(Model):
    """CF-NADE trained with random orderings and split points (§3.6)."""

    name: ClassVar[str] = "cf-nade"
    task: ClassVar = "ratings"
    fits_rating_values = True  # no reading of implicit data (``Model``)
    Config: ClassVar[type[ModelConfig]] = CFNADEConfig
    search_space = SEARCH_SPACE
    scorer_cls: ClassVar[type[Scorer]] = CFNADEScorer
    trains_distributed: ClassVar[bool] = True  # ranks share the users

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.net: CFNADENet | None = None
        self.levels: Tensor | None = None
        self._scorer_config: dict[str, Any] = {}

    @property
    def cfg(self) -> CFNADEConfig:
        assert isinstance(self.config, CFNADEConfig)
        return self.config

    def check_data(self, train: Interactions) -> None:
        """Explicit ratings with 2 to ``MAX_LEVELS`` distinct values (its softmax levels)."""
        rating_values(train, self.name)

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        """Adam on the hybrid cost; keep the epoch with the best validation RMSE."""
        cfg = self.cfg
        values = rating_values(train, self.name)
        rng = seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
        self.levels = torch.as_tensor(values, device=device)
        self._scorer_config = self.base_scorer_config(train)
        matrix = train.to_csr()
        users = np.flatnonzero(np.diff(matrix.indptr))  # users with ≥ 1 rating
        self.net = CFNADENet(
            train.n_items, len(values), cfg.hidden, cfg.n_layers, cfg.factored_rank
        ).to(device)
        self.net.init_output_bias(train, values)
        optimiser = torch.optim.Adam(self.net.param_groups(cfg.weight_decay), lr=cfg.lr)
        # Orderings and split points: a stream per rank, so ranks do not repeat each other.
        gen = torch.Generator(device=device).manual_seed(distributed.rank_seed(cfg.seed))
        forward = distributed.data_parallel(self.net)

        def run_epoch(epoch: int) -> dict[str, float]:
            total, count = 0.0, 0
            for rows in distributed.epoch_batches(len(users), cfg.batch_size, rng, epoch, cfg.seed):
                batch = History.from_csr(matrix, users[rows], device=device)
                loss = forward(lambda: self._batch_cost(batch, gen))  # noqa: B023 (called now)
                optimiser.zero_grad(set_to_none=True)
                (loss / batch.batch_size).backward()
                optimiser.step()
                total, count = total + float(loss.detach()), count + batch.batch_size
            return {"loss": total / max(count, 1)}

        loop = EpochLoop(
            run_epoch=run_epoch,
            to_scorer=self.to_scorer,
            get_state=lambda: self.net.state_dict() if self.net is not None else None,
            set_state=lambda state: self.net.load_state_dict(state) if self.net else None,
        )
        return fit_epochs(loop, cfg.epochs, validation, callbacks, patience=cfg.patience)

    def _batch_cost(self, batch: History, gen: torch.Generator) -> Tensor:
        """Σ over the batch's users of D/(D−i) · cost(ratings after the split | before)."""
        assert self.net is not None and self.levels is not None
        net, device = self.net, batch.device
        rows, lengths = batch.row_ids(), batch.lengths()
        levels = level_index(batch.values, self.levels)
        # A random ordering per user = random keys ranked within the user's row.
        keys = torch.rand(rows.shape[0], generator=gen, device=device)
        order = torch.argsort(rows.double() * 2 + keys)  # by row, then by key
        rank = torch.empty_like(rows)
        rank[order] = torch.arange(rows.shape[0], device=device) - batch.indptr[rows[order]]
        # Split point i ~ U{0, …, D−1}: i ratings of context, D − i ≥ 1 targets.
        split = (torch.rand(lengths.shape[0], generator=gen, device=device) * lengths).long()
        context = rank < split[rows]
        pre = hidden_pre_activation(
            net.cumulative_input(),
            net.hidden_bias,
            rows[context],
            batch.indices[context],
            levels[context],
            batch.batch_size,
        )
        h = activate(pre, net.layer2)
        target = ~context
        t_rows, t_items, t_levels = rows[target], batch.indices[target], levels[target]
        weight, bias = net.cumulative_output()
        if net.output_q is not None:
            scores = torch.einsum("nj,knj->nk", (h @ net.output_q.T)[t_rows], weight[:, t_items])
        else:
            scores = torch.einsum("nh,knh->nk", h[t_rows], weight[:, t_items])
        scores = scores + bias[:, t_items].T
        log_p = hybrid_log_likelihood(scores, t_levels, self.cfg.ordinal_weight)  # §3.4
        norm = (lengths.float() / (lengths - split).float())[t_rows]  # D / (D − i)
        return -(norm * log_p).sum()

    @torch.no_grad()
    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I) E[r | all observed ratings] from the raw parameters, level by level.

        Written without the cumulative tables the scorer stores: the hidden input
        adds W^j for every j ≤ r (§3.2) and s^k sums b^j + V^j h for j ≤ k, so a
        mistake in either precomputation shows up as a ranking difference.
        """
        if self.net is None or self.levels is None:
            raise ModelError(f"model '{self.name}' is not trained yet; call fit() first")
        net = self.net
        history = history.to(self.levels.device)
        levels = level_index(history.values, self.levels)
        rows = history.row_ids()
        pre = net.hidden_bias.expand(history.batch_size, -1).clone()
        for j in range(self.levels.shape[0]):
            hit = levels >= j  # rating r_i ≥ level j contributes W^j_{:,i}
            pre.index_add_(0, rows[hit], net.input_weight[j, history.indices[hit]])
        h = activate(pre, net.layer2)
        if net.output_weight is not None:  # set exactly when the output is not factored
            v: Tensor = net.output_weight
        else:
            v = torch.einsum("kij,jh->kih", net.output_p, net.output_q)  # V^k = P^k Q
        per_level = torch.einsum("bh,kih->bki", h, v) + net.output_bias[None]  # b^j + V^j h
        scores = torch.cumsum(per_level, dim=1).transpose(1, 2)  # s^k = Σ_{j≤k}
        return expected_rating(scores, self.levels)

    @torch.no_grad()
    def to_scorer(self) -> Scorer:
        if self.net is None or self.levels is None:
            raise ModelError(f"model '{self.name}' is not trained yet; call fit() first")
        net = self.net
        weight, bias = net.cumulative_output()
        tensors = {
            "input_weight": net.cumulative_input().detach().clone(),
            "hidden_bias": net.hidden_bias.detach().clone(),
            "output_bias": bias.detach().clone(),
            "rating_values": self.levels.detach().clone(),
        }
        tensors["output_weight" if net.output_q is None else "output_p"] = weight.detach().clone()
        if net.output_q is not None:
            tensors["output_q"] = net.output_q.detach().clone()
        if net.layer2 is not None:
            tensors["layer2_weight"] = net.layer2.weight.detach().clone()
            tensors["layer2_bias"] = net.layer2.bias.detach().clone()
        return CFNADEScorer(self._scorer_config, tensors)
