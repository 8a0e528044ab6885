"""IRGAN for item recommendation: a generator and a discriminator MF in a minimax game.

Paper: J. Wang, L. Yu, W. Zhang, Y. Gong, Y. Xu, B. Wang, P. Zhang, D. Zhang, "IRGAN:
A Minimax Game for Unifying Generative and Discriminative Information Retrieval
Models", SIGIR 2017 (section 2, 3.2). Details follow the authors' code,
geek-ai/irgan ``item_recommendation/cf_gan.py``, ``gen_model.py``, ``dis_model.py``.

Serving card (serves the generator, as the paper evaluates it)
------------
State (B, D)
    the generator's user factor p_u; unknown users are folded in exactly as for
    BPR-MF (``training.models.common.mf.fold_in_bpr``, Q and b of the generator fixed).
Item tensors
    ``item_factors`` Q (I, D), ``item_bias`` b (I,), ``user_factors`` P (U, D) of G;
    the discriminator's tensors ride along as ``d_user_factors``, ``d_item_factors``,
    ``d_item_bias`` (kept for analysis and warm restarts, unused by ``score``).
Score (B, I)
    g_θ(u, i) = <p_u, q_i> + b_i; p_θ(i | u) = softmax over items (eq. 9's
    generator, section 3.2). Ranks only, no ratings.

Training (cf_gan.py): both players are MF with item bias, EMB_DIM 5. G is
pre-trained as plain MF -- the authors load a DNS-trained MF
(``model_dns_ori.pkl``) we do not have, so we pre-train our own with BPR +
dynamic negative sampling (``training.models.common.pairwise``). Then per GAN epoch:
``d_epochs`` discriminator epochs on (positive, 1) / (G-sampled item, 0) pairs with
sigmoid cross-entropy + L2 (eq. 3's D objective; negatives resampled from
softmax(g/0.2) every ``d_resample_every`` epochs), then ``g_epochs`` generator
epochs of policy gradient (eq. 5) with reward 2·(σ(f_φ) - 0.5) and importance
sampling from p_n = (1-λ)·p_θ + λ·uniform(positives), weight p_θ / p_n.
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
from training.models.common.linear import linear_item_scores
from training.models.common.mf import ItemBiasMF, MFScorer, mf_scorer_config
from training.models.common.pairwise import (
    TripleSampler,
    bpr_step,
    check_pairwise,
    positive_matrix,
)
from training.models.common.search import Fixed, Float, Int, SearchSpace
from training.models.common.settings import DeviceSetting, EarlyStopping, ValidateEvery
from training.trainer import EpochLoop, fit_epochs


@dataclass
class IRGANConfig(EarlyStopping, ValidateEvery, DeviceSetting):
    """Defaults are the authors' cf_gan.py constants unless the help says otherwise.

    ``patience`` and ``validate_every`` count generator epochs of the adversarial
    phase (patience None: the game runs all ``gan_epochs``); the pre-training has
    its own ``pretrain_patience``.
    """

    dim: int = field(default=5, metadata={"help": "EMB_DIM of both players"})
    init_delta: float = field(default=0.05, metadata={"help": "U(-δ, δ) init of D (INIT_DELTA)"})
    pretrain_epochs: int = field(default=100, metadata={"help": "max BPR/DNS epochs for G"})
    pretrain_lr: float = field(default=5e-3, metadata={"help": "Adam lr of the pre-training"})
    pretrain_reg: float = field(default=1e-2, metadata={"help": "BPR L2 of the pre-training"})
    pretrain_batch_size: int = field(default=256, metadata={"help": "pre-training triples/step"})
    pretrain_patience: int = field(default=10, metadata={"help": "pre-training early stop"})
    dns_k: int = field(default=5, metadata={"help": "DNS candidates per negative (DNS_K)"})
    pretrain_discriminator: bool = field(
        default=False,
        metadata={"help": "start D from the pre-trained MF too (authors: False, random D)"},
    )
    gan_epochs: int = field(default=15, metadata={"help": "minimax epochs (0 = pretrained MF)"})
    d_epochs: int = field(default=100, metadata={"help": "D epochs per GAN epoch"})
    g_epochs: int = field(default=50, metadata={"help": "G epochs per GAN epoch"})
    game_epochs: int | None = field(
        default=None,
        metadata={
            "help": "G epochs the game runs in all (None: gan_epochs x g_epochs); "
            "genrec tune's all-data refit sets the count validation kept"
        },
    )
    d_resample_every: int = field(default=5, metadata={"help": "D epochs per negative resample"})
    d_batch_size: int = field(default=16, metadata={"help": "(pos, neg) lines per D step"})
    d_lr: float = field(default=1e-3, metadata={"help": "D SGD learning rate"})
    d_reg: float = field(default=0.1 / 16, metadata={"help": "D L2 λ (0.1 / BATCH_SIZE)"})
    g_lr: float = field(default=1e-3, metadata={"help": "G SGD learning rate"})
    g_reg: float = field(default=0.0, metadata={"help": "G L2 λ (0.0 / BATCH_SIZE)"})
    temperature: float = field(default=0.2, metadata={"help": "softmax temperature for D data"})
    sample_lambda: float = field(default=0.2, metadata={"help": "λ of the IS mixture p_n"})
    g_samples_per_positive: int = field(default=2, metadata={"help": "G samples = this x |pos|"})
    positive_threshold: float | None = field(
        default=None,
        metadata={"help": "explicit data: rating > this is a positive (authors: 3.99)"},
    )
    fold_in_steps: int = field(default=30, metadata={"help": "fold-in iterations (as BPR)"})

    def check(self) -> None:
        super().check()
        positive = ("dim", "d_batch_size", "d_resample_every", "g_samples_per_positive")
        for name in (*positive, "pretrain_batch_size", "dns_k", "fold_in_steps"):
            if getattr(self, name) < 1:  # validate_every: ValidateEvery
                raise ModelError(f"{name} must be >= 1, got {getattr(self, name)}")
        # A step of 0 leaves a player where it started, a negative one climbs its loss; the
        # shared lr check (TrainingConfig) does not reach these three.
        for name in ("pretrain_lr", "d_lr", "g_lr"):
            if not getattr(self, name) > 0:
                raise ModelError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("pretrain_epochs", "gan_epochs", "d_epochs", "g_epochs"):
            if getattr(self, name) < 0:
                raise ModelError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.game_epochs is not None and self.game_epochs < 0:
            raise ModelError(f"game_epochs must be >= 0, got {self.game_epochs}")
        plays = self.gan_epochs > 0 if self.game_epochs is None else self.game_epochs > 0
        if plays and self.g_epochs == 0:
            raise ModelError("g_epochs must be >= 1 when the game runs")
        if not 0.0 <= self.sample_lambda < 1.0:
            raise ModelError(f"sample_lambda must be in [0, 1), got {self.sample_lambda}")
        if self.temperature <= 0:
            raise ModelError(f"temperature must be > 0, got {self.temperature}")

    @property
    def game_length(self) -> int:
        """G epochs the adversarial phase runs (0: the pre-trained MF is the model)."""
        return self.gan_epochs * self.g_epochs if self.game_epochs is None else self.game_epochs


#: Factors and regularisation of both players, their learning rates, the softmax
#: temperature and how long the minimax runs (0: the pre-trained MF alone). The
#: inner D/G epochs are fixed lower than the paper's so a trial fits a budget.
SEARCH_SPACE = SearchSpace(
    dim=Int(5, 64, log=True),
    pretrain_reg=Float(1e-3, 1e-1, log=True),
    pretrain_lr=Float(1e-3, 1e-2, log=True),
    d_lr=Float(1e-4, 1e-2, log=True),
    g_lr=Float(1e-4, 1e-2, log=True),
    d_reg=Float(1e-4, 1e-1, log=True),
    temperature=Float(0.1, 1.0),
    gan_epochs=Int(0, 10),
    pretrain_epochs=Fixed(50),
    d_epochs=Fixed(20),
    g_epochs=Fixed(10),
)


class IRGANScorer(MFScorer):
    """The generator's MF (plus the discriminator's tensors, carried but not scored)."""

    name: ClassVar[str] = "irgan"


# --------------------------------------------------------------------------- the two players


def user_lists(positives: sp.csr_matrix, device: torch.device) -> list[tuple[int, Tensor]]:
    """[(u, positives of u)] for every user with at least one positive, users ascending."""
    return [
        (u, torch.as_tensor(positives.indices[lo:hi].astype(np.int64), device=device))
        for u, (lo, hi) in enumerate(zip(positives.indptr[:-1], positives.indptr[1:], strict=True))
        if hi > lo
    ]


@torch.no_grad()
def sample_for_d(
    g: ItemBiasMF, users: list[tuple[int, Tensor]], temperature: float, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """cf_gan.generate_for_d: per positive, one item from softmax(g_θ(u, ·) / τ).

    Returns (users, positive items, sampled items), one line per positive, in
    user order as the authors' dis-train.txt.
    """
    device = g.item_bias.device
    all_users = torch.tensor([u for u, _ in users], device=device)
    probs = torch.softmax(g.all_logits(all_users) / temperature, dim=1)
    lines_u, lines_i, lines_j = [], [], []
    for row, (u, pos) in enumerate(users):
        neg = torch.multinomial(probs[row], len(pos), replacement=True, generator=gen)
        lines_u.append(torch.full_like(pos, u))
        lines_i.append(pos)
        lines_j.append(neg)
    return torch.cat(lines_u), torch.cat(lines_i), torch.cat(lines_j)


def d_examples(lines: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """dis-train lines -> interleaved examples (u, i, 1), (u, j, 0) as ut.get_batch_data."""
    users, pos, neg = lines
    labels = torch.tensor([1.0, 0.0], device=users.device).repeat(len(users))
    return (
        torch.stack([users, users], 1).flatten(),
        torch.stack([pos, neg], 1).flatten(),
        labels,
    )


@torch.no_grad()
def d_step(
    d: ItemBiasMF, users: Tensor, items: Tensor, labels: Tensor, lr: float, lam: float
) -> None:
    """One SGD step of dis_model.pre_loss (sigmoid cross-entropy + L2).

    TF minimises the (N,) vector CE_k + λ·l2_loss(batch) by its sum, so each of the
    N gathered rows gets λ·N times its own value as L2 gradient; we do the same.
    """
    p, q, b = d.user_factors[users], d.item_factors[items], d.item_bias[items]
    g = torch.sigmoid((p * q).sum(1) + b) - labels  # d CE / d logit
    n = float(len(users))
    d.user_factors.index_add_(0, users, g[:, None] * q + lam * n * p, alpha=-lr)
    d.item_factors.index_add_(0, items, g[:, None] * p + lam * n * q, alpha=-lr)
    d.item_bias.index_add_(0, items, g + lam * n * b, alpha=-lr)


@torch.no_grad()
def d_epoch(d: ItemBiasMF, examples: tuple[Tensor, Tensor, Tensor], cfg: IRGANConfig) -> float:
    """One pass in file order, ``d_batch_size`` lines (2x examples) per step.

    Returns the mean cross-entropy over all examples after the pass (one
    vectorised evaluation instead of a loss per step: the steps are the cost).
    """
    users, items, labels = examples
    step = 2 * cfg.d_batch_size
    for s in range(0, len(users), step):
        d_step(
            d, users[s : s + step], items[s : s + step], labels[s : s + step], cfg.d_lr, cfg.d_reg
        )
    logits = d.pair_logits(users, items)
    return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, labels))


@torch.no_grad()
def g_user_step(
    g: ItemBiasMF, d: ItemBiasMF, u: int, pos: Tensor, cfg: IRGANConfig, gen: torch.Generator
) -> float:
    """One policy-gradient step of G for user u (cf_gan.py 'Train G'); returns its loss."""
    p_u = g.user_factors[u].clone()
    logits = g.item_factors @ p_u + g.item_bias  # (I,)
    prob = torch.softmax(logits, dim=0)  # p_θ(i | u)
    pn = (1.0 - cfg.sample_lambda) * prob
    pn[pos] += cfg.sample_lambda / len(pos)  # importance-sampling proposal p_n
    sample = torch.multinomial(pn, cfg.g_samples_per_positive * len(pos), True, generator=gen)
    d_logit = linear_item_scores(d.user_factors[u], d.item_factors, d.item_bias, sample)
    reward = 2.0 * (torch.sigmoid(d_logit) - 0.5) * prob[sample] / pn[sample]  # eq. 5 + IS
    n = float(len(sample))
    # loss = -mean(log p_θ(s_k) r_k): d/d logits = -(Σ_k r_k e_{s_k} - (Σ_k r_k) p_θ) / n
    grad = reward.sum() * prob
    grad.index_add_(0, sample, -reward)
    grad /= n
    grad_q, grad_b = torch.outer(grad, p_u), grad.clone()
    if cfg.g_reg:  # λ·l2_loss over the gathered sample rows (duplicates count)
        grad_q.index_add_(0, sample, g.item_factors[sample], alpha=cfg.g_reg)
        grad_b.index_add_(0, sample, g.item_bias[sample], alpha=cfg.g_reg)
    g.user_factors[u] -= cfg.g_lr * (g.item_factors.T @ grad + cfg.g_reg * p_u)
    g.item_factors.sub_(cfg.g_lr * grad_q)
    g.item_bias.sub_(cfg.g_lr * grad_b)
    return float(-(torch.log(prob[sample]) * reward).mean())


# --------------------------------------------------------------------------- model


class IRGAN(Model):
    """IRGAN item recommendation; ``fit`` = G pre-training, then the minimax game."""

    name: ClassVar[str] = "irgan"
    task: ClassVar[Task] = "topk"
    Config: ClassVar[type[ModelConfig]] = IRGANConfig
    search_space = SEARCH_SPACE
    scorer_cls: ClassVar[type[Scorer]] = IRGANScorer

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.g: ItemBiasMF | None = None
        self.d: ItemBiasMF | None = None
        self.pretrain_report: FitReport | None = None
        #: What ``replay_lengths`` answers; set when a fit ends.
        self._replay: dict[str, int] | None = None
        self._scorer_config: dict[str, Any] = {}

    @property
    def cfg(self) -> IRGANConfig:
        assert isinstance(self.config, IRGANConfig)
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
        started = time.perf_counter()
        rng = seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        positives = positive_matrix(train, cfg.positive_threshold)
        self._scorer_config = mf_scorer_config(self, train, cfg.pretrain_reg)
        self.g = ItemBiasMF(train.n_users, train.n_items, cfg.dim).init_uniform(cfg.init_delta)
        self.d = ItemBiasMF(train.n_users, train.n_items, cfg.dim).init_uniform(cfg.init_delta)
        self.g.to(device)
        self.d.to(device)
        self._replay = None
        self.pretrain_report = self._pretrain(positives, rng, validation, callbacks)
        if cfg.pretrain_discriminator:
            self.d.load_state_dict(self.g.state_dict())
        report = self.pretrain_report
        game_kept = 0
        if cfg.game_length > 0:
            pretrained = copy.deepcopy({"g": self.g.state_dict(), "d": self.d.state_dict()})
            gan = self._adversarial(positives, gen, validation, callbacks)
            report = self._select_phase(report, gan, pretrained, validation)
            # _select_phase numbers the game's epochs after the pre-training's.
            game_kept = gan.best_epoch if report.best_epoch > self.pretrain_report.epochs_run else 0
        self._replay = {
            "pretrain_epochs": self.pretrain_report.best_epoch,
            "game_epochs": game_kept,
        }
        report.seconds = time.perf_counter() - started
        return report

    def _select_phase(
        self,
        pre: FitReport,
        gan: FitReport,
        pretrained: dict[str, Any],
        validation: Validation | None,
    ) -> FitReport:
        """One report over both phases; validation may keep the pre-trained MF.

        Epochs are numbered across the run (pre-training first). Without
        validation the last adversarial epoch is kept, as the authors' loop ends.
        If no adversarial epoch beats the best pre-training epoch on validation,
        the pre-trained players are restored: the game did not help on this data.
        """
        assert self.g is not None and self.d is not None
        merged = FitReport(
            best_epoch=pre.epochs_run + gan.best_epoch,
            epochs_run=pre.epochs_run + gan.epochs_run,
            best_metrics=gan.best_metrics,
            seconds=0.0,
            history=pre.history + gan.history,
        )
        if validation is not None and pre.best_metrics and gan.best_metrics:
            sign = 1.0 if validation.higher_is_better else -1.0
            metric = validation.metric
            if sign * pre.best_metrics[metric] >= sign * gan.best_metrics[metric]:
                self.g.load_state_dict(pretrained["g"])
                self.d.load_state_dict(pretrained["d"])
                merged.best_epoch, merged.best_metrics = pre.best_epoch, pre.best_metrics
        return merged

    def _pretrain(
        self,
        positives: sp.csr_matrix,
        rng: np.random.Generator,
        validation: Validation | None,
        callbacks: list[EpochCallback] | None,
    ) -> FitReport:
        """G as plain MF: BPR with DNS negatives, best epoch kept on validation."""
        cfg, g = self.cfg, self.g
        assert g is not None
        sampler = TripleSampler(positives, rng)
        opt = torch.optim.Adam(g.parameters(), lr=cfg.pretrain_lr)

        def run_epoch(epoch: int) -> dict[str, float]:
            losses = [
                bpr_step(g, opt, sampler, u, i, cfg.pretrain_reg, cfg.dns_k)
                for u, i in sampler.epoch(cfg.pretrain_batch_size)
            ]
            return {"pretrain_bpr": float(np.mean(losses))}

        loop = EpochLoop(run_epoch, self.to_scorer, lambda: g.state_dict(), g.load_state_dict)
        if cfg.pretrain_epochs == 0:
            return FitReport(0, 0, {}, 0.0, [])
        return fit_epochs(loop, cfg.pretrain_epochs, validation, callbacks, cfg.pretrain_patience)

    def _adversarial(
        self,
        positives: sp.csr_matrix,
        gen: torch.Generator,
        validation: Validation | None,
        callbacks: list[EpochCallback] | None,
    ) -> FitReport:
        """cf_gan.main's minimax loop; one trainer epoch = one G epoch."""
        cfg, g, d = self.cfg, self.g, self.d
        assert g is not None and d is not None
        users = user_lists(positives, g.item_bias.device)

        def run_epoch(epoch: int) -> dict[str, float]:
            losses: dict[str, float] = {}
            if (epoch - 1) % cfg.g_epochs == 0:  # a new GAN epoch starts with D
                losses["d_ce"] = self._d_phase(users, gen)
            g_losses = [g_user_step(g, d, u, pos, cfg, gen) for u, pos in users]
            losses["g_pg"] = float(np.mean(g_losses))
            return losses

        def get_state() -> dict[str, Any]:
            return {"g": g.state_dict(), "d": d.state_dict()}

        def set_state(state: dict[str, Any]) -> None:
            g.load_state_dict(state["g"])
            d.load_state_dict(state["d"])

        loop = EpochLoop(run_epoch, self.to_scorer, get_state, set_state)
        return fit_epochs(
            loop, cfg.game_length, validation, callbacks, cfg.patience, cfg.validate_every
        )

    def _d_phase(self, users: list[tuple[int, Tensor]], gen: torch.Generator) -> float:
        """``d_epochs`` D epochs, negatives redrawn from G every ``d_resample_every``."""
        cfg, g, d = self.cfg, self.g, self.d
        assert g is not None and d is not None
        ce = float("nan")
        examples = None
        for d_ep in range(cfg.d_epochs):
            if examples is None or d_ep % cfg.d_resample_every == 0:
                examples = d_examples(sample_for_d(g, users, cfg.temperature, gen))
            ce = d_epoch(d, examples, cfg)
        return ce

    def replay_lengths(self, best_epoch: int) -> dict[str, int] | None:
        """The pre-training's kept epoch and the game's (0: validation kept the pre-trained
        MF): the game starts from the kept pre-trained players, so both counts are needed
        and one epoch number across the phases cannot give them. None after a fit that
        was stopped part-way (``best_epoch`` alone does not say which phase it was in)."""
        return dict(self._replay) if self._replay is not None else None

    def to_scorer(self) -> Scorer:
        if self.g is None or self.d is None:
            raise ModelError("irgan: call fit() before to_scorer()")
        tensors = {**self.g.tensors(), **self.d.tensors(prefix="d_")}
        return IRGANScorer(self._scorer_config, tensors)

    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I) the generator's g_θ(u, ·) for training users (history unused)."""
        if self.g is None:
            raise ModelError("irgan: call fit() before reference_scores()")
        with torch.no_grad():
            return self.g.all_logits(users.to(self.g.item_bias.device)).cpu()
