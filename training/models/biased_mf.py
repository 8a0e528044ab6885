"""Biased matrix factorisation: Koren, Bell & Volinsky, "Matrix Factorization
Techniques for Recommender Systems", IEEE Computer 2009 (the SVD-style baseline).

    r_hat_ui = mu + b_u + b_i + p_u . q_i                                   (eq. 4)
    min  sum_{(u,i) observed} (r_ui - r_hat_ui)^2
         + lambda (||p_u||^2 + ||q_i||^2 + b_u^2 + b_i^2)                    (eq. 5)

trained on the observed ratings only, by Adam (default) or plain SGD over
shuffled mini-batches, the model kept at the best validation RMSE when a
validation is given (early stopping with ``patience``). The L2 term is applied
per observed rating, as in Koren's SGD updates, so a user with n ratings is
regularised n times.

Serving card (d = factors)
    State        (B, d+2) [p_u, 1, b_u]
    Item tensors items (I, d+2) [q_i, b_i + mu, 1]  (mu folded into the item column)
    Score        (B, I)  state @ items^T = p_u.q_i + b_i + mu + b_u  (eq. 4): one product.
    Ratings      yes: ``predict`` clips the score into the training rating range.

Fold-in (a user the artifact has not seen, ``users == -1``): with the item
tables fixed, eq. 5 restricted to one user is a ridge regression. We solve it in
closed form for the user's factors *and* bias together: with z_j = [q_j, 1] and
y_j = r_uj - mu - b_j over the n items the user rated,

    [p_u, b_u] = (Z^T Z + lambda n I)^-1 Z^T y,

the exact minimiser of the training objective for that user (lambda n because
the penalty is paid once per rating). No history gives p_u = 0, b_u = 0, i.e.
the score mu + b_i. Known users use their trained p_u, b_u.

With implicit data (all ratings 1) this degenerates to a weak baseline: the
only signal is which items were rated, and it is fitted as a constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    UnsuitableData,
    Validation,
    seed_everything,
)
from training.models.common.linear import linear_item_scores
from training.models.common.search import Choice, Fixed, Float, Int, SearchSpace
from training.models.common.settings import TrainingConfig
from training.trainer import EpochLoop, fit_epochs


@dataclass
class BiasedMFConfig(TrainingConfig):
    """Koren-style biased MF; defaults are sensible for MovieLens-size data.

    One epoch is one pass over the observed ratings.
    """

    batch_unit = "ratings"

    factors: int = field(default=64, metadata={"help": "latent dimension d of p_u and q_i"})
    l2: float = field(
        default=0.05, metadata={"help": "lambda of eq. 5, paid once per observed rating"}
    )
    lr: float = 0.005
    optimizer: str = field(default="adam", metadata={"help": "adam | sgd"})
    epochs: int = 60
    batch_size: int = 512
    init_std: float = field(default=0.05, metadata={"help": "std of the normal init of p, q"})
    patience: int | None = 5

    def check(self) -> None:
        super().check()
        if self.optimizer not in ("adam", "sgd"):
            raise ModelError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")


#: Factors, the per-rating L2 weight lambda and Adam's lr (docs/accuracy-ratings.md).
SEARCH_SPACE = SearchSpace(
    factors=Int(8, 256, log=True),
    l2=Float(1e-3, 0.3, log=True),
    lr=Float(1e-3, 2e-2, log=True),
    batch_size=Choice((256, 512, 1024)),
    epochs=Fixed(40),
    patience=Fixed(3),
)


def fold_in_users(
    history: History, items: Tensor, l2: float, factors: int
) -> tuple[Tensor, Tensor]:
    """Closed-form ridge fold-in: histories -> ((B, d) p_u, (B,) b_u); see the module doc."""
    d = factors
    z_all = torch.cat([items[:, :d], torch.ones_like(items[:, :1])], dim=1)  # (I, d+1)
    offset = items[:, d]  # (I,) b_i + mu
    out = torch.zeros(history.batch_size, d + 1, dtype=items.dtype, device=items.device)
    indptr = history.indptr.tolist()
    for b in range(history.batch_size):
        lo, hi = indptr[b], indptr[b + 1]
        if hi == lo:
            continue
        idx = history.indices[lo:hi]
        z = z_all[idx].double()
        y = history.values[lo:hi].double() - offset[idx].double()
        gram = z.T @ z + l2 * (hi - lo) * torch.eye(d + 1, dtype=torch.float64, device=z.device)
        out[b] = torch.linalg.solve(gram, z.T @ y).to(items.dtype)
    return out[:, :d], out[:, d]


class BiasedMFScorer(Scorer):
    """[p_u, 1, b_u] . [q_i, b_i + mu, 1]."""

    name = "biased-mf"
    predicts_ratings = True
    table_tensors = frozenset({"items"})  # ``InnerProductScorer``

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) users (-1: fold in), histories -> (B, d+2) [p_u, 1, b_u]."""
        users = users.to(self.device)
        d = int(self.config["factors"])
        p = self.t["user_factors"][users.clamp(min=0)]
        b = self.t["user_bias"][users.clamp(min=0)]
        unknown = users < 0
        if bool(unknown.any()):
            rows = torch.nonzero(unknown).ravel()
            sub = _history_rows(history.to(self.device), rows)
            p_new, b_new = fold_in_users(sub, self.t["items"], float(self.config["l2"]), d)
            p = p.clone()
            b = b.clone()
            p[rows], b[rows] = p_new, b_new
        ones = torch.ones_like(b).unsqueeze(1)
        return torch.cat([p, ones, b.unsqueeze(1)], dim=1)

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, d+2), optional (C,) items -> (B, I) or (B, C) predicted ratings (unclipped)."""
        return linear_item_scores(state, self.t["items"], items=items)  # eq. 4 in one product

    def item_vectors(self) -> Tensor:
        """(I, d) the item factors q_i."""
        return self.t["items"][:, : int(self.config["factors"])]

    def inner_product_table(self) -> Tensor:
        """(I, d+2) [q_i, b_i + mu, 1]: the biases are already columns (``InnerProductScorer``)."""
        return self.t["items"]

    def inner_product_rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of ``inner_product_table`` (``InnerProductScorer``)."""
        return self.t["items"][start:stop]

    def inner_product_queries(self, state: Tensor) -> Tensor:
        """The state [p_u, 1, b_u] is the query."""
        return state


def _history_rows(history: History, rows: Tensor) -> History:
    """The sub-batch of ``history`` made of batch rows ``rows``."""
    indptr = history.indptr.tolist()
    items, values = [], []
    for r in rows.tolist():
        items.append(history.indices[indptr[r] : indptr[r + 1]].cpu().numpy())
        values.append(history.values[indptr[r] : indptr[r + 1]].cpu().numpy())
    return History.from_lists(items, values, history.n_items, device=history.device)


class _BiasedMFNet(nn.Module):
    """Parameters of eq. 4."""

    def __init__(self, n_users: int, n_items: int, factors: int, init_std: float) -> None:
        super().__init__()
        self.p = nn.Embedding(n_users, factors)
        self.q = nn.Embedding(n_items, factors)
        self.b_u = nn.Embedding(n_users, 1)
        self.b_i = nn.Embedding(n_items, 1)
        for emb in (self.p, self.q):
            nn.init.normal_(emb.weight, std=init_std)
        for emb in (self.b_u, self.b_i):
            nn.init.zeros_(emb.weight)

    def forward(self, u: Tensor, i: Tensor, mu: float) -> tuple[Tensor, Tensor]:
        """(N,) user and item indices -> (N,) predictions (eq. 4), (N,) L2 terms (eq. 5)."""
        p, q = self.p(u), self.q(i)
        bu, bi = self.b_u(u).squeeze(1), self.b_i(i).squeeze(1)
        pred = mu + bu + bi + (p * q).sum(1)
        penalty = (p * p).sum(1) + (q * q).sum(1) + bu * bu + bi * bi
        return pred, penalty


class BiasedMF(Model):
    """Biased MF on observed ratings, mini-batch Adam/SGD, best-validation-epoch restore."""

    name = "biased-mf"
    task = "ratings"
    fits_rating_values = True  # no reading of implicit data (``Model``)
    Config = BiasedMFConfig
    search_space = SEARCH_SPACE
    scorer_cls = BiasedMFScorer
    trains_distributed = True  # ranks share the epoch's ratings
    config: BiasedMFConfig

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.net: _BiasedMFNet | None = None
        self.mu = 0.0
        self._scorer_config: dict[str, Any] = {}

    def check_data(self, train: Interactions) -> None:
        """A rating to learn from."""
        if len(train) == 0:
            raise UnsuitableData("biased-mf: the training data has no ratings")

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        cfg = self.config
        self.check_data(train)
        rng = seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
        self.net = _BiasedMFNet(train.n_users, train.n_items, cfg.factors, cfg.init_std).to(device)
        self.mu = float(train.ratings.mean())
        self._scorer_config = {**self.base_scorer_config(train), "global_mean": self.mu}
        users = torch.as_tensor(train.users, device=device)
        items = torch.as_tensor(train.items, device=device)
        ratings = torch.as_tensor(train.ratings, device=device)
        opt_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
        optimizer = opt_cls(self.net.parameters(), lr=cfg.lr)
        net = self.net
        forward = distributed.data_parallel(net)  # ranks share the ratings

        def batch_loss(batch: Tensor) -> tuple[Tensor, Tensor]:
            pred, penalty = net(users[batch], items[batch], self.mu)
            sq = (ratings[batch] - pred) ** 2
            return sq, (sq + cfg.l2 * penalty).mean()  # eq. 5, per-rating penalty

        def run_epoch(epoch: int) -> dict[str, float]:
            total_sq, total = 0.0, 0
            for rows in distributed.epoch_batches(len(users), cfg.batch_size, rng, epoch, cfg.seed):
                batch = torch.as_tensor(rows, device=device)
                sq, loss = forward(lambda: batch_loss(batch))  # noqa: B023 (called now)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total_sq += float(sq.detach().sum())
                total += len(batch)
            return {"loss": total_sq / total, "train_rmse": float(np.sqrt(total_sq / total))}

        loop = EpochLoop(
            run_epoch=run_epoch,
            to_scorer=self.to_scorer,
            get_state=lambda: net.state_dict(),
            set_state=net.load_state_dict,
        )
        return fit_epochs(loop, cfg.epochs, validation, callbacks, patience=cfg.patience)

    def to_scorer(self) -> BiasedMFScorer:
        if self.net is None:
            raise ModelError("biased-mf: call fit() before to_scorer()")
        net = self.net
        with torch.no_grad():
            q = net.q.weight
            items = torch.cat([q, net.b_i.weight + self.mu, torch.ones_like(net.b_i.weight)], dim=1)
            tensors = {
                "items": items.clone(),
                "user_factors": net.p.weight.clone(),
                "user_bias": net.b_u.weight.squeeze(1).clone(),
            }
        return BiasedMFScorer(self._scorer_config, tensors)

    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I) eq. 4 for every item, straight from the embeddings."""
        if self.net is None:
            raise ModelError("biased-mf: call fit() before reference_scores()")
        net = self.net
        with torch.no_grad():
            u = users.to(net.p.weight.device)
            return (
                self.mu
                + net.b_u.weight[u]
                + net.b_i.weight.squeeze(1).unsqueeze(0)
                + net.p.weight[u] @ net.q.weight.T
            )
