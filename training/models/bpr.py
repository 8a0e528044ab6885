"""BPR-MF: matrix factorisation with item bias trained by Bayesian Personalized Ranking.

Paper: S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian
Personalized Ranking from Implicit Feedback", UAI 2009.

Serving card
------------
State (B, D)
    the user's factor row p_u for a known user; for an unknown user (or one with
    interactions after the cutoff) p_u is folded in: BPR-Opt over the user's
    positives against *all* their non-positives, with Q and b fixed, minimised
    by a monotone majorise-minimise Newton iteration (``common.mf.fold_in_bpr``). It is
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
import torch
from torch import Tensor

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
    Task,
    Validation,
    seed_everything,
)
from training.models.common.mf import ItemBiasMF, MFScorer, mf_scorer_config
from training.models.common.pairwise import (
    TripleSampler,
    bpr_step,
    check_pairwise,
    positive_matrix,
)
from training.models.common.search import Choice, Fixed, Float, Int, SearchSpace
from training.models.common.settings import TrainingConfig, ValidateEvery
from training.trainer import EpochLoop, fit_epochs

# --------------------------------------------------------------------------- config


@dataclass
class BPRConfig(TrainingConfig, ValidateEvery):
    """BPR-MF hyper-parameters (tuned on an ML-100K validation split; see docs).

    One epoch draws |positives| triples (bootstrap sampling, Sec. 4.2).
    """

    batch_unit = "triples"

    dim: int = field(default=64, metadata={"help": "latent factors per user / item"})
    epochs: int = 100
    batch_size: int = 256
    lr: float = 2e-3
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
    patience: int | None = 10
    fold_in_steps: int = field(
        default=30, metadata={"help": "majorise-minimise steps when folding in a new user"}
    )

    def check(self) -> None:
        super().check()
        for name in ("dim", "dns_k", "fold_in_steps"):  # the rest: the shared groups
            if getattr(self, name) < 1:
                raise ModelError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.reg < 0 or self.init_std <= 0:
            raise ModelError("init_std must be > 0 and reg >= 0")


#: Factors, regularisation and lr (the ML-100K defaults came from a grid over these),
#: and how many negatives DNS draws.
SEARCH_SPACE = SearchSpace(
    dim=Int(16, 128, log=True),
    reg=Float(1e-4, 1e-1, log=True),
    lr=Float(5e-4, 1e-2, log=True),
    dns_k=Choice((1, 2, 5)),
    epochs=Fixed(60),
    patience=Fixed(5),
)


# --------------------------------------------------------------------------- scorer


class BPRScorer(MFScorer):
    """BPR-MF's serving form: the shared MF scorer (``common.mf``) under this model's name."""

    name: ClassVar[str] = "bpr-mf"


# --------------------------------------------------------------------------- model


class BPRMF(Model):
    """BPR-MF (Rendle et al. 2009), selected on validation by ``fit_epochs``."""

    name: ClassVar[str] = "bpr-mf"
    task: ClassVar[Task] = "topk"
    Config: ClassVar[type[ModelConfig]] = BPRConfig
    search_space = SEARCH_SPACE
    scorer_cls: ClassVar[type[Scorer]] = BPRScorer
    trains_distributed: ClassVar[bool] = True  # ranks share the epoch's triples

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.mf: ItemBiasMF | None = None
        self._scorer_config: dict[str, Any] = {}

    @property
    def cfg(self) -> BPRConfig:
        assert isinstance(self.config, BPRConfig)
        return self.config

    def check_data(self, train: Interactions) -> None:
        """A positive (above ``positive_threshold``) with a negative item for some user."""
        check_pairwise(train, self.cfg.positive_threshold)

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        cfg = self.cfg
        rng = seed_everything(cfg.seed)
        if distributed.active():  # each rank draws its own triples (TripleSampler.epoch)
            rng = np.random.default_rng(distributed.rank_seed(cfg.seed))
        positives = positive_matrix(train, cfg.positive_threshold)
        sampler = TripleSampler(positives, rng)
        self.mf = ItemBiasMF(train.n_users, train.n_items, cfg.dim).init_normal(cfg.init_std)
        self.mf.to(resolve_device(cfg.device))
        self._scorer_config = mf_scorer_config(self, train, cfg.reg)
        opt = torch.optim.Adam(self.mf.parameters(), lr=cfg.lr)
        mf = self.mf
        forward = distributed.data_parallel(mf)

        def run_epoch(epoch: int) -> dict[str, float]:
            losses = [
                bpr_step(mf, opt, sampler, u, i, cfg.reg, cfg.dns_k, forward)
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
        return BPRScorer(self._scorer_config, self.mf.tensors())

    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I) the trained predictor x̂_u· for training users (history unused)."""
        if self.mf is None:
            raise ModelError("bpr-mf: call fit() before reference_scores()")
        with torch.no_grad():
            return self.mf.all_logits(users.to(self.mf.item_bias.device)).cpu()
