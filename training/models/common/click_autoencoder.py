"""The multinomial click autoencoder shared by Mult-VAE and Mult-DAE.

Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for Collaborative
Filtering", WWW 2018: both models read a user's click vector x_u, normalised
and dropped out (Sec. 2.3 / the authors' code), through a sparse first layer,
and are trained on the multinomial log-likelihood

    log p(x_u | z_u) = sum_i x_ui log softmax(f(z_u))_i                    (eq. 2)

over mini-batches of users with Adam. This module holds that machinery:
the settings (``ClickAutoencoderConfig``), the training loop
(``ClickAutoencoder``: subclasses give the net, the batch loss, the serving
tensors), the sparse input layer, eq. 2 with a hand-written gradient, and the
bfloat16 switch for the dense products. The scorers' last layer is
``common.linear.linear_item_scores`` (W_2 h + b_2).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
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
from training.models.common.settings import TrainingConfig, ValidateEvery
from training.trainer import EpochLoop, fit_epochs


@dataclass
class ClickAutoencoderConfig(TrainingConfig, ValidateEvery):
    """Settings shared by Mult-VAE and Mult-DAE (the paper's training recipe)."""

    batch_unit = "users"

    dropout: float = field(default=0.5, metadata={"help": "dropout on the normalised input"})
    lr: float = 1e-3
    batch_size: int = 500
    epochs: int = 200
    lam: float = field(
        default=0.0,
        metadata={"help": "L2 weight on the weight matrices: loss += lam * sum ||W||^2"},
    )
    # Not in the paper: 20 validations without a gain stops training, the best epoch is
    # kept either way (the curves and figures behind 20: docs/accuracy-topk.md).
    patience: int | None = 20
    click_threshold: float | None = field(
        default=None,
        metadata={
            "help": "explicit ratings above this count as clicks (None: every record is a "
            "click; ignored on implicit data); serving histories follow the same rule"
        },
    )
    bf16: bool = field(
        default=False,
        metadata={
            "help": "train the dense layers' products in bfloat16 (autocast; weights, "
            "activations, softmax and loss stay float32): ~2.3x faster GEMMs on CPUs with "
            "AVX-512 BF16 and on GPUs; off by default, the paper trains in float32"
        },
    )

    def check(self) -> None:
        super().check()
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"dropout must be in [0, 1), got {self.dropout}")


def click_values(history: History, threshold: float | None) -> Tensor:
    """(nnz,) 1.0 for each history entry that is a click, 0.0 otherwise."""
    if threshold is None:
        return torch.ones_like(history.values)
    return (history.values > threshold).float()


def sparse_rows(history: History, values: Tensor) -> Tensor:
    """(B, I) sparse COO tensor of a history batch with the given entry values."""
    return torch.sparse_coo_tensor(
        torch.stack([history.row_ids(), history.indices]),
        values,
        size=(history.batch_size, history.n_items),
        check_invariants=False,
    )


def normalized_input(
    history: History, threshold: float | None, dropout: float, training: bool
) -> Tensor:
    """(B, I) sparse: clicks / ||clicks||_2 per row, then input dropout when training.

    Same order as the authors' code (normalise, then drop), so a dropped-out
    input is not re-normalised.
    """
    values = click_values(history, threshold)
    rows = history.row_ids()
    sq = torch.zeros(history.batch_size, device=values.device).index_add_(0, rows, values * values)
    values = values / sq.sqrt().clamp_min(1e-12)[rows]
    if training and dropout > 0:
        keep = (torch.rand_like(values) >= dropout).float()
        values = values * keep / (1.0 - dropout)
    return sparse_rows(history, values)


def dense_forward(layer: nn.Linear, x: Tensor, bf16: bool) -> Tensor:
    """(B, in) -> (B, out) float32 output of a dense ``layer`` during training.

    The dense products are most of a training step: the I-wide output layer's
    forward and two backward products at catalog scale, and at ML-100K's
    1,381 items the 600 -> 400 and 200 -> 600 layers too (docs/peers.md).
    With ``bf16`` they run in bfloat16 under autocast, against a bfloat16 copy
    of the float32 weights made per step; the output is cast back, so the
    tanh, the likelihood, the KL term and the optimiser see float32.
    """
    if not bf16:
        return layer(x)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
        out = layer(x)
    return out.float()


def multinomial_nll(logits: Tensor, history: History, clicks: Tensor) -> Tensor:
    """(B, I) logits -> (B,) -sum_i x_ui log softmax(logits)_i  (eq. 2), read sparsely.

    -sum_i x_ui (f_i - logsumexp f) = N_u logsumexp f - sum_{i clicked} f_i, so
    no dense (B, I) target is built (``_SparseMultinomialNLL``).
    """
    rows = history.row_ids()
    # torch leaves autograd.Function.apply unannotated.
    return _SparseMultinomialNLL.apply(  # type: ignore[no-untyped-call]
        logits, rows, history.indices, clicks
    )


class _SparseMultinomialNLL(torch.autograd.Function):
    """Eq. 2 with its gradient written out: N_u softmax(f_u) - x_u, built in place.

    Autograd would produce the same numbers from ``logsumexp`` and the gather of
    the clicked logits, but as two dense (B, I) gradients (the gather's one a
    zero-filled scatter) that are then added; at 100,000 x 20,000 writing it out
    took a float32 epoch from 128.2 to 120.1 CPU s (docs/peers.md). Here the softmax term is the one
    dense tensor and the clicks are subtracted from it where they are.
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, rows: Tensor, cols: Tensor, clicks: Tensor) -> Tensor:
        batch = logits.shape[0]
        lse = torch.logsumexp(logits, dim=1)  # (B,)
        dot = torch.zeros(batch, device=logits.device, dtype=logits.dtype)
        dot.index_add_(0, rows, logits[rows, cols] * clicks)
        n_clicks = torch.zeros(batch, device=logits.device, dtype=logits.dtype)
        n_clicks.index_add_(0, rows, clicks)
        ctx.save_for_backward(logits, lse, n_clicks, rows, cols, clicks)
        return n_clicks * lse - dot

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        logits, lse, n_clicks, rows, cols, clicks = ctx.saved_tensors
        # d/df_ui [N_u lse_u - sum_clicked f] = N_u softmax_ui - x_ui, times grad_u
        out = (logits - lse.unsqueeze(1)).exp_().mul_((grad * n_clicks).unsqueeze(1))
        out.index_put_((rows, cols), -(grad[rows] * clicks), accumulate=True)
        return out, None, None, None


class SparseInput(nn.Module):
    """First layer I -> H as a sparse x dense product: (B, I) sparse @ (I, H) + b."""

    def __init__(self, n_items: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_items, out_dim))
        self.bias = nn.Parameter(torch.empty(out_dim))
        nn.init.xavier_uniform_(self.weight)
        nn.init.normal_(self.bias, std=0.001)  # the authors' truncated-normal(0.001) biases

    def forward(self, x: Tensor) -> Tensor:
        return torch.sparse.mm(x, self.weight) + self.bias


def dense_layer(in_dim: int, out_dim: int) -> nn.Linear:
    """Linear layer with the authors' init (Xavier weights, N(0, 0.001) biases)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.normal_(layer.bias, std=0.001)
    return layer


class ClickAutoencoder(Model):
    """Training loop shared by Mult-VAE and Mult-DAE: batches of users' click rows."""

    task = "topk"
    trains_distributed = True
    config: ClickAutoencoderConfig

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.net: nn.Module | None = None
        self._scorer_config: dict[str, Any] = {}
        self.update_count = 0  # gradient updates so far (drives beta annealing)
        self.click_threshold: float | None = None  # effective rule (None on implicit data)

    @abstractmethod
    def build_net(self, n_items: int) -> nn.Module:
        """The network for a catalog of ``n_items``."""

    @abstractmethod
    def batch_loss(self, history: History) -> tuple[Tensor, dict[str, float]]:
        """Scalar loss of one batch of click rows (values all 1) + parts to report per epoch."""

    @abstractmethod
    def scorer_tensors(self) -> dict[str, Tensor]:
        """Named tensors of the serving form (cloned, detached)."""

    @abstractmethod
    def logits(self, history: History) -> Tensor:
        """(B, I) eval-mode forward pass (no dropout, no sampling)."""

    def check_data(self, train: Interactions) -> None:
        """A click (a rating above ``click_threshold`` on explicit data) to learn from."""
        threshold = self.config.click_threshold if train.explicit else None
        _active_users(_click_matrix(train, threshold), self.name)

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        cfg = self.config
        rng = seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
        # implicit data is all clicks already: the threshold only reads explicit ratings
        self.click_threshold = cfg.click_threshold if train.explicit else None
        matrix = _click_matrix(train, self.click_threshold)
        active = _active_users(matrix, self.name)
        self.net = self.build_net(train.n_items).to(device)
        self.update_count = 0
        self._scorer_config = {
            **self.base_scorer_config(train),
            "click_threshold": self.click_threshold,
        }
        # fused: one pass over the ~2·I·600 weights per step instead of ~10 element-wise
        # passes; the profile in docs/peers.md put Adam at 17% of an epoch at 20k items.
        optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, fused=True)
        net = self.net
        forward = distributed.data_parallel(net)  # gradients averaged across ranks, if several

        def run_epoch(epoch: int) -> dict[str, float]:
            net.train()
            sums: dict[str, float] = {}
            n_batches = 0
            for rows in distributed.epoch_batches(
                len(active), cfg.batch_size, rng, epoch, cfg.seed
            ):
                batch = History.from_csr(matrix, active[rows], device)
                loss, parts = forward(lambda: self.batch_loss(batch))  # noqa: B023 (called now)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                self.update_count += 1
                n_batches += 1
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value
            net.eval()
            return {key: value / n_batches for key, value in sums.items()}

        loop = EpochLoop(
            run_epoch=run_epoch,
            to_scorer=self.to_scorer,
            get_state=lambda: {"net": net.state_dict(), "updates": self.update_count},
            set_state=self._restore,
        )
        report = fit_epochs(
            loop, cfg.epochs, validation, callbacks, cfg.patience, cfg.validate_every
        )
        net.eval()
        return report

    def _restore(self, state: dict[str, Any]) -> None:
        if self.net is None:
            raise ModelError(f"{self.name}: nothing to restore into")
        self.net.load_state_dict(state["net"])
        self.update_count = int(state["updates"])

    def weight_penalty(self) -> Tensor:
        """lam * sum ||W||^2 over weight matrices (biases excluded), as the authors' code.

        Mult-VAE's lam is 0: the term is then skipped rather than computed as 0 · Σ W²,
        whose forward and backward passes over every weight cost ~20% of an epoch.
        """
        if self.net is None:
            raise ModelError(f"{self.name}: no network")
        total = torch.zeros((), device=next(self.net.parameters()).device)
        if self.config.lam == 0:
            return total
        for name, param in self.net.named_parameters():
            if name.endswith("weight"):
                total = total + (param * param).sum()
        return self.config.lam * total

    def to_scorer(self) -> Scorer:
        if self.net is None:
            raise ModelError(f"{self.name}: call fit() before to_scorer()")
        return self.scorer_cls(self._scorer_config, self.scorer_tensors())

    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I) logits of the trained network in eval mode."""
        if self.net is None:
            raise ModelError(f"{self.name}: call fit() before reference_scores()")
        self.net.eval()
        with torch.no_grad():
            return self.logits(history.to(next(self.net.parameters()).device))


def _active_users(matrix: sp.csr_matrix, model: str) -> np.ndarray:
    """Rows of ``matrix`` with a click; ``UnsuitableData`` when there is none."""
    active = np.flatnonzero(np.diff(matrix.indptr) > 0)
    if len(active) == 0:
        raise UnsuitableData(f"{model}: the training data has no clicks")
    return active


def _click_matrix(train: Interactions, threshold: float | None) -> sp.csr_matrix:
    """(U, I) CSR of clicks (1.0), after the optional rating threshold."""
    data = train if threshold is None else train.binarize(threshold)
    return data.to_csr("ones")
