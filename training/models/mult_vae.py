"""Mult-VAE: Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for
Collaborative Filtering", WWW 2018 (arXiv 1802.05814). Mult-DAE, from the same
paper, lives in ``mult_dae.py`` and shares the click-autoencoder machinery here.

Model (paper Sec. 2, architecture [I -> 600 -> 200 -> 600 -> I], tanh):
    z_u ~ N(0, I_K),  pi(z_u) = softmax(f_theta(z_u)),  x_u ~ Mult(N_u, pi(z_u))   (eq. 1)
    log p(x_u | z_u) = sum_i x_ui log pi_i(z_u)    multinomial log-likelihood     (eq. 2)
    q_phi(z_u | x_u) = N(mu_phi(x_u), diag sigma_phi^2(x_u))   amortised encoder
    L_beta = E_q[log p(x_u | z_u)] - beta KL(q_phi(z_u | x_u) || p(z_u))          (eq. 6; eq. 5 at beta = 1)
    beta annealed linearly from 0 to ``anneal_cap`` over ``total_anneal_steps``
    gradient updates (Sec. 2.2.2), the model kept at the best validation NDCG@100,
    which keeps the best beta reached (as the paper does).
The input is L2-normalised and dropped out (p = 0.5) before the encoder; the
first layer is a sparse x dense product (the click matrix is never densified;
only a (batch, I) logit block exists at a time). Adam, lr 1e-3, 500 users per
batch, no weight decay (the authors' code: lam = 0), at most 200 epochs, stopped
after 20 validations without a gain (not in the paper; docs/accuracy-topk.md).

Serving card (H = hidden_dim = 600, K = latent_dim = 200)
    State        (B, H)  tanh(W_d1 mu_phi(x_u) + b_d1): the decoder's last hidden layer
                          for the user's click vector, at the encoder mean (no sampling).
                          Fold-in is this forward pass; known users are encoded the same way.
    Item tensors dec_out_w (I, H), dec_out_b (I,): the last layer W_2, b_2.
    Score        (B, I)  state @ W_2^T + b_2  (logits; softmax is monotone, so not applied).
    Ratings      none: ``predict`` raises NotARatingModel.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from training.data.interactions import Interactions
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
from training.trainer import EpochLoop, fit_epochs

# --------------------------------------------------------------------------- shared pieces


@dataclass
class ClickAutoencoderConfig(ModelConfig):
    """Settings shared by Mult-VAE and Mult-DAE (the paper's training recipe)."""

    dropout: float = field(default=0.5, metadata={"help": "dropout on the normalised input"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    batch_size: int = field(default=500, metadata={"help": "users per mini-batch"})
    epochs: int = field(default=200, metadata={"help": "passes over the training users"})
    lam: float = field(
        default=0.0,
        metadata={"help": "L2 weight on the weight matrices: loss += lam * sum ||W||^2"},
    )
    patience: int | None = field(
        default=20,
        metadata={
            "help": "stop after this many validations without gain (None: run every epoch); "
            "the best epoch is kept either way (docs/accuracy-topk.md, early stopping)"
        },
    )
    validate_every: int = field(default=1, metadata={"help": "validate every N epochs"})
    click_threshold: float | None = field(
        default=None,
        metadata={
            "help": "explicit ratings above this count as clicks (None: every record is a "
            "click; ignored on implicit data); serving histories follow the same rule"
        },
    )
    device: str = field(default="cpu", metadata={"help": "torch device for training"})
    bf16: bool = field(
        default=False,
        metadata={
            "help": "train the dense layers' products in bfloat16 (autocast; weights, "
            "activations, softmax and loss stay float32): ~2.3x faster GEMMs on CPUs with "
            "AVX-512 BF16 and on GPUs; off by default, the paper trains in float32"
        },
    )


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

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        cfg = self.config
        self._check_config()
        rng = seed_everything(cfg.seed)
        device = torch.device(cfg.device)
        # implicit data is all clicks already: the threshold only reads explicit ratings
        self.click_threshold = cfg.click_threshold if train.explicit else None
        matrix = _click_matrix(train, self.click_threshold)
        active = np.flatnonzero(np.diff(matrix.indptr) > 0)
        if len(active) == 0:
            raise ModelError(f"{self.name}: the training data has no clicks")
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

        def run_epoch(epoch: int) -> dict[str, float]:
            net.train()
            order = rng.permutation(active)
            sums: dict[str, float] = {}
            n_batches = 0
            for start in range(0, len(order), cfg.batch_size):
                batch = History.from_csr(matrix, order[start : start + cfg.batch_size], device)
                loss, parts = self.batch_loss(batch)
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

    def _check_config(self) -> None:
        cfg = self.config
        if not 0.0 <= cfg.dropout < 1.0:
            raise ModelError(f"{self.name}: dropout must be in [0, 1), got {cfg.dropout}")
        if cfg.batch_size < 1 or cfg.epochs < 1:
            raise ModelError(f"{self.name}: batch_size and epochs must be >= 1")

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


def _click_matrix(train: Interactions, threshold: float | None) -> sp.csr_matrix:
    """(U, I) CSR of clicks (1.0), after the optional rating threshold."""
    data = train if threshold is None else train.binarize(threshold)
    return data.to_csr("ones")


# --------------------------------------------------------------------------- Mult-VAE


@dataclass
class MultVAEConfig(ClickAutoencoderConfig):
    """Liang et al. 2018 defaults (their ML-20M setting)."""

    hidden_dim: int = field(default=600, metadata={"help": "encoder/decoder hidden width"})
    latent_dim: int = field(default=200, metadata={"help": "K, dimension of z_u"})
    total_anneal_steps: int = field(
        default=200_000,
        metadata={"help": "gradient updates over which beta rises linearly from 0 to the cap"},
    )
    anneal_cap: float = field(default=0.2, metadata={"help": "largest beta (paper: 0.2)"})
    epsilon_std: float = field(
        default=1.0,
        metadata={
            "help": "std of the reparameterisation noise eps in z = mu + eps * sigma (paper: 1; "
            "RecBole's MultiVAE uses 0.01, kept here to compare like with like)"
        },
    )


class _VAENet(nn.Module):
    """q_phi: I -> H -> 2K (mu, log sigma^2); f_theta: K -> H -> I; tanh between."""

    def __init__(self, n_items: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.latent = latent
        self.enc_in = SparseInput(n_items, hidden)
        self.enc_out = dense_layer(hidden, 2 * latent)
        self.dec_hidden = dense_layer(latent, hidden)
        self.dec_out = dense_layer(hidden, n_items)

    def encode(self, x: Tensor, bf16: bool = False) -> tuple[Tensor, Tensor]:
        """(B, I) sparse normalised input -> (B, K) mu, (B, K) log sigma^2.

        The sparse first layer stays float32 (there is no bfloat16 sparse kernel).
        """
        h = dense_forward(self.enc_out, torch.tanh(self.enc_in(x)), bf16)
        return h[:, : self.latent], h[:, self.latent :]

    def decode_hidden(self, z: Tensor, bf16: bool = False) -> Tensor:
        """(B, K) -> (B, H): the serving state when z = mu."""
        return torch.tanh(dense_forward(self.dec_hidden, z, bf16))


class MultVAEScorer(Scorer):
    """state = decoder hidden layer at the encoder mean; score = W_2 state + b_2."""

    name = "mult-vae"
    predicts_ratings = False

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) users (unused: the encoder folds every user in), histories -> (B, H)."""
        t = self.t
        x = normalized_input(history.to(self.device), self.config.get("click_threshold"), 0, False)
        h = torch.tanh(torch.sparse.mm(x, t["enc_in_w"]) + t["enc_in_b"])
        mu = h @ t["enc_mu_w"].T + t["enc_mu_b"]  # encoder mean, no sampling
        return torch.tanh(mu @ t["dec_hidden_w"].T + t["dec_hidden_b"])

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, H), optional (C,) items -> (B, I) or (B, C) logits."""
        w, b = self.t["dec_out_w"], self.t["dec_out_b"]
        if items is not None:
            w, b = w[items], b[items]
        return state @ w.T + b

    def item_vectors(self) -> Tensor:
        """(I, H) rows of the last layer W_2."""
        return self.t["dec_out_w"]


class MultVAE(ClickAutoencoder):
    """Mult-VAE^PR: multinomial likelihood, partially regularised (annealed beta) ELBO."""

    name = "mult-vae"
    Config = MultVAEConfig
    scorer_cls = MultVAEScorer
    config: MultVAEConfig
    net: _VAENet | None

    def build_net(self, n_items: int) -> _VAENet:
        return _VAENet(n_items, self.config.hidden_dim, self.config.latent_dim)

    def _check_config(self) -> None:
        super()._check_config()
        if self.config.epsilon_std < 0:
            raise ModelError(f"mult-vae: epsilon_std must be >= 0, got {self.config.epsilon_std}")

    def beta(self) -> float:
        """Linear KL annealing (Sec. 2.2.2): beta = min(cap, updates / total_anneal_steps)."""
        steps = max(self.config.total_anneal_steps, 1)
        return min(self.config.anneal_cap, self.update_count / steps)

    def batch_loss(self, history: History) -> tuple[Tensor, dict[str, float]]:
        net = self._net()
        cfg = self.config
        # training batches come from the click matrix: every entry already is a click
        x = normalized_input(history, None, cfg.dropout, training=True)
        mu, logvar = net.encode(x, cfg.bf16)
        eps = torch.randn_like(mu) * cfg.epsilon_std  # the paper's eps ~ N(0, I) at 1
        z = mu + eps * torch.exp(0.5 * logvar)  # reparameterisation
        logits = dense_forward(net.dec_out, net.decode_hidden(z, cfg.bf16), cfg.bf16)
        nll = multinomial_nll(logits, history, click_values(history, None)).mean()
        # KL(N(mu, sigma^2) || N(0, I)) per user, summed over K, averaged over the batch
        kl = (0.5 * (-logvar + logvar.exp() + mu * mu - 1.0)).sum(1).mean()
        beta = self.beta()
        loss = nll + beta * kl + self.weight_penalty()  # -L_beta (eq. 6) + L2
        parts = {"loss": loss.item(), "nll": nll.item(), "kl": kl.item(), "beta": beta}
        return loss, parts

    def logits(self, history: History) -> Tensor:
        net = self._net()
        x = normalized_input(history, self.click_threshold, 0.0, training=False)
        mu, _ = net.encode(x)
        return net.dec_out(net.decode_hidden(mu))

    def scorer_tensors(self) -> dict[str, Tensor]:
        net = self._net()
        k = self.config.latent_dim
        named = {
            "enc_in_w": net.enc_in.weight,
            "enc_in_b": net.enc_in.bias,
            "enc_mu_w": net.enc_out.weight[:k],  # only the mean half serves
            "enc_mu_b": net.enc_out.bias[:k],
            "dec_hidden_w": net.dec_hidden.weight,
            "dec_hidden_b": net.dec_hidden.bias,
            "dec_out_w": net.dec_out.weight,
            "dec_out_b": net.dec_out.bias,
        }
        return {name: t.detach().clone().contiguous() for name, t in named.items()}

    def _net(self) -> _VAENet:
        if self.net is None:
            raise ModelError("mult-vae: call fit() first")
        return self.net


__all__ = [
    "ClickAutoencoder",
    "ClickAutoencoderConfig",
    "MultVAE",
    "MultVAEConfig",
    "MultVAEScorer",
    "click_values",
    "dense_forward",
    "dense_layer",
    "multinomial_nll",
    "normalized_input",
    "sparse_rows",
]
