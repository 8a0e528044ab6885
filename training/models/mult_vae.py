"""Mult-VAE: Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for
Collaborative Filtering", WWW 2018 (arXiv 1802.05814). Mult-DAE, from the same
paper, lives in ``mult_dae.py``; both use the click-autoencoder machinery in
``common/click_autoencoder.py``.

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

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from training.models.base import History, ModelError, Scorer
from training.models.common.click_autoencoder import (
    ClickAutoencoder,
    ClickAutoencoderConfig,
    SparseInput,
    click_values,
    dense_forward,
    dense_layer,
    multinomial_nll,
    normalized_input,
)
from training.models.common.linear import biased_table, linear_item_scores, ones_column
from training.models.common.search import Choice, Fixed, Float, Int, SearchSpace

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

    def check(self) -> None:
        super().check()
        if self.epsilon_std < 0:
            raise ModelError(f"epsilon_std must be >= 0, got {self.epsilon_std}")
        if self.hidden_dim < 1 or self.latent_dim < 1:
            raise ModelError(
                f"hidden_dim and latent_dim must be >= 1, got {self.hidden_dim}, {self.latent_dim}"
            )
        if self.anneal_cap < 0:
            raise ModelError(f"anneal_cap (the largest beta) must be >= 0, got {self.anneal_cap}")


#: What validation showed matters on ML-100K (docs/accuracy-topk.md): input dropout
#: (0.6 beat the paper's 0.5), lr, the beta cap and its schedule (the paper's 200,000
#: annealing steps never anneal on small data), the batch size (updates per epoch)
#: and the sampling noise. Epochs are capped so a trial fits a budget; early
#: stopping and the pruner end most trials sooner.
SEARCH_SPACE = SearchSpace(
    dropout=Float(0.3, 0.8),
    lr=Float(1e-4, 3e-3, log=True),
    anneal_cap=Float(0.05, 1.0),
    total_anneal_steps=Int(500, 200_000, log=True),
    epsilon_std=Float(0.0, 1.0),
    batch_size=Choice((100, 250, 500)),
    epochs=Fixed(100),
    patience=Fixed(10),
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
    table_tensors = frozenset({"dec_out_w", "dec_out_b"})  # ``InnerProductScorer``

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) users (unused: the encoder folds every user in), histories -> (B, H)."""
        t = self.t
        x = normalized_input(history.to(self.device), self.config.get("click_threshold"), 0, False)
        h = torch.tanh(torch.sparse.mm(x, t["enc_in_w"]) + t["enc_in_b"])
        mu = h @ t["enc_mu_w"].T + t["enc_mu_b"]  # encoder mean, no sampling
        return torch.tanh(mu @ t["dec_hidden_w"].T + t["dec_hidden_b"])

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, H), optional (C,) items -> (B, I) or (B, C) logits."""
        return linear_item_scores(state, self.t["dec_out_w"], self.t["dec_out_b"], items)

    def item_vectors(self) -> Tensor:
        """(I, H) rows of the last layer W_2."""
        return self.t["dec_out_w"]

    def inner_product_table(self) -> Tensor:
        """(I, H+1) [W_2, b_2]: the logits are an inner product (``InnerProductScorer``)."""
        return biased_table(self.t["dec_out_w"], self.t["dec_out_b"])

    def inner_product_rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of ``inner_product_table`` (``InnerProductScorer``)."""
        return biased_table(self.t["dec_out_w"][start:stop], self.t["dec_out_b"][start:stop])

    def inner_product_queries(self, state: Tensor) -> Tensor:
        """(B, H) -> (B, H+1) [h_u, 1]."""
        return ones_column(state)


class MultVAE(ClickAutoencoder):
    """Mult-VAE^PR: multinomial likelihood, partially regularised (annealed beta) ELBO."""

    name = "mult-vae"
    Config = MultVAEConfig
    search_space = SEARCH_SPACE
    scorer_cls = MultVAEScorer
    config: MultVAEConfig
    net: _VAENet | None

    def build_net(self, n_items: int) -> _VAENet:
        return _VAENet(n_items, self.config.hidden_dim, self.config.latent_dim)

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
