"""PMF: probabilistic matrix factorisation by alternating closed-form updates.

Salakhutdinov & Mnih, "Probabilistic Matrix Factorization", NIPS 2007, as
ConvMF's paper writes it (Kim et al., RecSys 2016) with the item prior mean
at 0:

    r_ij ~ N(u_i . v_j, sigma^2),  u_i ~ N(0, sigma_U^2 I),  v_j ~ N(0, sigma_V^2 I)
    u_i <- (V I_i V^T + lambda_U I_K)^-1 V R_i                               (eq. 8)
    v_j <- (U I_j U^T + lambda_V I_K)^-1 (U R_j + lambda_V prior_j)           (eq. 9)

one outer iteration (eq. 8 then eq. 9) = one trainer epoch. ``PMF`` is also
ConvMF's training loop: ``convmf.ConvMF`` overrides the hooks marked below to
put a CNN's reading of the item document in ``prior_j`` (eq. 11). The biases
extension, the new-item anchor and the serving card (``convmf_scorer``) are
described in ``convmf.py``'s docstring: they are the same for both models.
"""

from __future__ import annotations

import dataclasses
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
    UnsuitableData,
    Validation,
    seed_everything,
)
from training.models.common.search import Choice, Fixed, Float, Int, SearchSpace, only_if
from training.models.common.settings import EpochSettings
from training.models.convmf_scorer import (
    ANCHORS,
    PMFScorer,
    design,
    new_item_rows,
    penalty,
    rated_item_rows,
    ridge_rows,
    user_rows,
)
from training.trainer import EpochLoop, fit_epochs

# --------------------------------------------------------------------------- config


@dataclass
class PMFConfig(EpochSettings):
    """PMF by alternating closed-form updates; ConvMF's paper settings for ML-1M.

    One epoch is one outer iteration: eq. 8, eq. 9 (and ConvMF's eq. 11).
    """

    factors: int = field(default=50, metadata={"help": "latent dimension k of u_i and v_j"})
    lambda_u: float = field(default=100.0, metadata={"help": "lambda_U of eq. 7 (user prior)"})
    lambda_v: float = field(default=10.0, metadata={"help": "lambda_V of eq. 7 (item prior)"})
    biases: bool = field(
        default=True,
        metadata={
            "help": "extension: predict mu + b_i + b_j + u.v (biases ridge-fitted with the "
            "factors); false = the paper's raw u.v"
        },
    )
    lambda_bias: float | None = field(
        default=None,
        metadata={"help": "ridge penalty of b_i and b_j (None: lambda_U and lambda_V)"},
    )
    new_item_anchor: str = field(
        default="user_mean",
        metadata={
            "help": "with biases, how an item without ratings is scored from its text: "
            "user_mean (the user's mean rating + the text's difference from a typical "
            "item) or model (mu + b_i + b~_j + u.v~_j)"
        },
    )
    epochs: int = 30
    patience: int | None = 5
    init_std: float = field(
        default=0.1, metadata={"help": "std of the normal init of document-less item rows"}
    )

    def check(self) -> None:
        super().check()
        if self.lambda_u <= 0 or self.lambda_v <= 0:
            raise ModelError("lambda_u and lambda_v must be > 0")
        if self.lambda_bias is not None and self.lambda_bias <= 0:
            raise ModelError("lambda_bias must be > 0 (or None)")
        if self.factors < 1:
            raise ModelError(f"factors must be >= 1, got {self.factors}")
        if self.new_item_anchor not in ANCHORS:
            raise ModelError(
                f"new_item_anchor must be one of {ANCHORS}, got {self.new_item_anchor!r}"
            )


#: Factors and the two prior precisions of eq. 7; the bias penalty is only searched
#: when biases are on (a conditional parameter).
SEARCH_SPACE = SearchSpace(
    factors=Int(5, 100, log=True),
    lambda_u=Float(0.1, 1000.0, log=True),
    lambda_v=Float(0.1, 1000.0, log=True),
    biases=Choice((True, False)),
    lambda_bias=only_if(Float(0.1, 1000.0, log=True), "biases", True),
    epochs=Fixed(20),
    patience=Fixed(3),
)


# --------------------------------------------------------------------------- models


@dataclass
class _Params:
    """What an outer iteration changes; the trainer snapshots it for best-epoch restore.

    With biases the last column of ``u`` is b_i and of ``v`` is b_j.
    """

    u: Tensor  # (U, k[+1])
    v: Tensor  # (I, k[+1])
    prior: Tensor | None  # (I, k[+1]) cnn(W, X_j), zero rows for items without a document
    cnn: dict[str, Tensor] | None  # CNN state dict


@dataclass
class _Ratings:
    """The training ratings as tensors, and mu (0 without biases)."""

    users: Tensor
    items: Tensor
    values: Tensor
    mu: float


class PMF(Model):
    """PMF by eq. 8-9 alternating closed-form updates (prior mean 0), best validation kept."""

    name = "pmf"
    task = "ratings"
    fits_rating_values = True  # no reading of implicit data (``Model``)
    Config = PMFConfig
    search_space = SEARCH_SPACE
    scorer_cls: ClassVar[type[PMFScorer]] = PMFScorer
    config: PMFConfig

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.params: _Params | None = None
        self.mu = 0.0
        self._scorer_config: dict[str, Any] = {}
        self._user_means = torch.zeros(0)  # (U,) m_i, the new-item anchor
        self._item_counts = torch.zeros(0)  # (I,) training ratings per item

    @property
    def width(self) -> int:
        """Columns of the trained u and v rows: k, plus the bias with ``biases``."""
        return self.config.factors + int(self.config.biases)

    # -- hooks ConvMF overrides -----------------------------------------------------------

    def _prepare(self, train: Interactions, rng: np.random.Generator, device: torch.device) -> None:
        """Set up side models before the first iteration (PMF: none)."""

    def _prior(self) -> Tensor | None:
        """(I, k[+1]) prior mean of V (eq. 3-4); None = 0 (PMF)."""
        return None

    def _after_item_step(self, v: Tensor, rng: np.random.Generator) -> dict[str, float]:
        """Train side models on the new V (ConvMF: eq. 11); their losses."""
        return {}

    def _start_from_prior(self) -> bool:
        """Whether V starts at its prior mean where there is one (ConvMF's ``item_init``)."""
        return True

    def _extra_scorer_config(self) -> dict[str, Any]:
        return {}

    def _extra_tensors(self) -> dict[str, Tensor]:
        return {}

    def _get_cnn_state(self) -> dict[str, Tensor] | None:
        return None

    def _set_cnn_state(self, state: dict[str, Tensor] | None) -> None:
        """Restore side-model weights from a snapshot (PMF: none)."""

    # -- training --------------------------------------------------------------------------

    def check_data(self, train: Interactions) -> None:
        """A rating to learn from."""
        if len(train) == 0:
            raise UnsuitableData(f"{self.name}: the training data has no ratings")

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
        self.mu = float(train.ratings.mean()) if cfg.biases else 0.0
        self._scorer_config = {**self.base_scorer_config(train), "global_mean": self.mu}
        self._prepare(train, rng, device)
        self._count_ratings(train, device)
        data = _Ratings(
            torch.as_tensor(train.users, device=device),
            torch.as_tensor(train.items, device=device),
            torch.as_tensor(train.ratings, device=device),
            self.mu,
        )
        self.params = self._init_params(train, device)
        unrated = torch.as_tensor(
            np.bincount(train.items, minlength=train.n_items) == 0, device=device
        )

        def run_epoch(epoch: int) -> dict[str, float]:
            assert self.params is not None
            return self._iteration(self.params, data, unrated, rng)

        loop = EpochLoop(
            run_epoch=run_epoch,
            to_scorer=self.to_scorer,
            get_state=self._get_state,
            set_state=self._set_state,
        )
        return fit_epochs(loop, cfg.epochs, validation, callbacks, patience=cfg.patience)

    def _count_ratings(self, train: Interactions, device: torch.device) -> None:
        """Per-item rating counts and the users' anchored means m_i (see convmf_scorer)."""
        mu = float(train.ratings.mean())
        counts = np.bincount(train.users, minlength=train.n_users)
        sums = np.bincount(train.users, weights=train.ratings, minlength=train.n_users)
        self._user_means = torch.as_tensor((sums + mu) / (counts + 1), dtype=torch.float32)
        self._user_means = self._user_means.to(device)
        self._item_counts = torch.as_tensor(np.bincount(train.items, minlength=train.n_items))
        self._item_counts = self._item_counts.to(device)

    def _text_mean(self) -> Tensor:
        """(k+1,) [v_bar, b_bar]: the rating-weighted mean CNN output over rated items.

        What the text says about a typical rated item; 0 without a CNN (PMF).
        """
        assert self.params is not None
        prior = self.params.prior
        if prior is None:
            return torch.zeros(self.width, device=self.params.v.device)
        weights = self._item_counts * (prior.abs().sum(1) > 0)
        if not bool(weights.any()):
            return torch.zeros(self.width, device=prior.device)
        return (weights.unsqueeze(1) * prior).sum(0) / weights.sum()

    def _unrated_rows(self, text_mean: Tensor) -> tuple[Tensor, Tensor]:
        """(I,) mask of items without ratings, and their [v~_j, b~_j] (text mean if no doc)."""
        assert self.params is not None
        unrated = self._item_counts == 0
        aug = self.params.v[unrated].detach().clone()
        aug[aug.abs().sum(1) == 0] = text_mean  # no document either: the typical item
        return unrated, aug

    def _init_params(self, train: Interactions, device: torch.device) -> _Params:
        """Authors' init: V = cnn(W, X) where there is a document (``item_init=text``); U uniform(0, 1)."""
        v = torch.randn(train.n_items, self.width, device=device) * self.config.init_std
        if not self._start_from_prior():  # Cornac's Xavier-uniform V (``item_init=random``)
            bound = (6.0 / (train.n_items + self.width)) ** 0.5
            v = (torch.rand(train.n_items, self.width, device=device) * 2 - 1) * bound
        if self.config.biases:
            v[:, -1] = 0.0
        prior = self._prior()
        if prior is not None and self._start_from_prior():
            has_doc = prior.abs().sum(1) > 0
            v[has_doc] = prior[has_doc]
        u = torch.rand(train.n_users, self.width, device=device)  # overwritten by eq. 8 at once
        return _Params(u, v, prior, None)

    def _iteration(
        self, p: _Params, r: _Ratings, unrated: Tensor, rng: np.random.Generator
    ) -> dict[str, float]:
        """One outer iteration: eq. 8, eq. 9, (eq. 11), and the eq. 7 objective."""
        cfg, b = self.config, self.config.biases
        n_users, n_items = len(p.u), len(p.v)
        y_u = r.values - r.mu - (p.v[r.items, -1] if b else 0.0)  # minus b_j
        lam_u = penalty(cfg.lambda_u, cfg.lambda_bias, self.width, b, p.u.device)
        lam_v = penalty(cfg.lambda_v, cfg.lambda_bias, self.width, b, p.u.device)
        p.u = ridge_rows(r.users, r.items, y_u, design(p.v, b), n_users, lam_u, None)
        y_v = r.values - r.mu - (p.u[r.users, -1] if b else 0.0)  # minus b_i
        p.v = ridge_rows(r.items, r.users, y_v, design(p.u, b), n_items, lam_v, p.prior)
        side = self._after_item_step(p.v, rng)
        p.prior = self._prior()  # cnn(W, X) with the new W: next eq. 9 and the loss
        if p.prior is not None:  # eq. 9 without ratings is v_j = cnn(W, X_j): keep it exact
            p.v[unrated] = p.prior[unrated]
        residual = r.values - self._predict_pairs(p, r.users, r.items)
        sq = float((residual**2).sum())
        gap = p.v if p.prior is None else p.v - p.prior
        objective = sq / 2 + self._penalty_sum(cfg.lambda_u, p.u)
        objective += self._penalty_sum(cfg.lambda_v, gap)  # eq. 7 (W decay aside)
        n = len(r.values)
        return {"loss": objective / n, "train_rmse": float(np.sqrt(sq / n)), **side}

    def _penalty_sum(self, lam: float, rows: Tensor) -> float:
        """lam/2 ||factors||^2 + lambda_bias/2 ||bias||^2 of one side (eq. 7's prior terms)."""
        diag = penalty(lam, self.config.lambda_bias, self.width, self.config.biases)
        return float((torch.as_tensor(diag, device=rows.device) / 2 * rows**2).sum())

    def _predict_pairs(self, p: _Params, users: Tensor, items: Tensor) -> Tensor:
        """(N,) mu + b_i + b_j + u_i . v_j (biases) or u_i . v_j, from the trained rows."""
        if not self.config.biases:
            return (p.u[users] * p.v[items]).sum(1)
        u, v = p.u[users], p.v[items]
        return self.mu + u[:, -1] + v[:, -1] + (u[:, :-1] * v[:, :-1]).sum(1)

    def _get_state(self) -> _Params:
        assert self.params is not None
        return dataclasses.replace(self.params, cnn=self._get_cnn_state())

    def _set_state(self, state: _Params) -> None:
        self.params = state
        self._set_cnn_state(state.cnn)

    # -- serving ---------------------------------------------------------------------------

    def to_scorer(self) -> PMFScorer:
        if self.params is None:
            raise ModelError(f"{self.name}: call fit() before to_scorer()")
        u, v = self.params.u.detach().float(), self.params.v.detach().float()
        tensors: dict[str, Tensor] = {}
        if self.config.biases:
            text_mean = self._text_mean().float()
            unrated, aug = self._unrated_rows(text_mean)
            u = user_rows(u, self._user_means, text_mean)
            v = rated_item_rows(v, self.mu)
            v[unrated] = new_item_rows(aug, self.mu, self.config.new_item_anchor)
            tensors["text_mean"] = text_mean.clone()
        tensors.update({"items": v.clone(), "user_factors": u.clone(), **self._extra_tensors()})
        return self.scorer_cls({**self._scorer_config, **self._extra_scorer_config()}, tensors)

    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I) predicted ratings straight from the trained rows (eq. 1 or its biased form)."""
        if self.params is None:
            raise ModelError(f"{self.name}: call fit() before reference_scores()")
        p = self.params
        users = users.to(p.u.device)
        u = p.u[users]
        if not self.config.biases:
            return u @ p.v.T
        scores = self.mu + u[:, -1:] + p.v[:, -1] + u[:, :-1] @ p.v[:, :-1].T
        text_mean = self._text_mean()
        unrated, aug = self._unrated_rows(text_mean)
        if self.config.new_item_anchor == "model":
            new = self.mu + u[:, -1:] + aug[:, -1] + u[:, :-1] @ aug[:, :-1].T
        else:  # m_i + (b~_j - b_bar) + u_i . (v~_j - v_bar)
            gap = aug - text_mean
            new = self._user_means[users].unsqueeze(1) + gap[:, -1] + u[:, :-1] @ gap[:, :-1].T
        scores[:, unrated] = new
        return scores
