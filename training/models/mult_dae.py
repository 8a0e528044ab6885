"""Mult-DAE: Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for
Collaborative Filtering", WWW 2018, Sec. 2.3 (the denoising-autoencoder variant).

    x~_u = dropout(x_u / ||x_u||_2), p = 0.5            (input corruption)
    h_u  = tanh(W_1^T x~_u + b_1)                        ([I -> 200 -> I])
    log p(x_u | h_u) = sum_i x_ui log softmax(W_2 h_u + b_2)_i   multinomial (eq. 2)
    loss = -mean_u log p(x_u | h_u) + lam sum ||W||^2    (the authors' code: lam = 0.01 / batch)

No KL term and no sampling: the same click-autoencoder training loop as
Mult-VAE (``common.click_autoencoder.ClickAutoencoder``), Adam lr 1e-3, 500 users per batch,
kept at the best validation epoch.

Serving card (H = hidden_dim = 200)
    State        (B, H)  tanh(W_1^T x_u/||x_u|| + b_1), the hidden code of the user's clicks
                          (fold-in is this encoding; known users are encoded the same way).
    Item tensors dec_out_w (I, H), dec_out_b (I,): W_2, b_2.
    Score        (B, I)  state @ W_2^T + b_2 (logits).
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
from training.models.common.search import Choice, Fixed, Float, SearchSpace


@dataclass
class MultDAEConfig(ClickAutoencoderConfig):
    """Liang et al. 2018 Mult-DAE defaults."""

    hidden_dim: int = field(default=200, metadata={"help": "width of the single hidden layer"})
    lam: float = field(
        default=0.01 / 500,
        metadata={"help": "L2 weight: loss += lam * sum ||W||^2 (authors' code: 0.01 / batch)"},
    )

    def check(self) -> None:
        super().check()
        if self.hidden_dim < 1:
            raise ModelError(f"hidden_dim must be >= 1, got {self.hidden_dim}")


#: Dropout, lr, the L2 weight and the batch size (batch 100 beat the paper's 500 on
#: ML-100K validation, docs/accuracy-topk.md), and the hidden width.
SEARCH_SPACE = SearchSpace(
    dropout=Float(0.2, 0.8),
    lr=Float(1e-4, 3e-3, log=True),
    lam=Float(1e-6, 1e-3, log=True),
    hidden_dim=Choice((100, 200, 600)),
    batch_size=Choice((100, 250, 500)),
    epochs=Fixed(100),
    patience=Fixed(10),
)


class _DAENet(nn.Module):
    """I -> H (tanh) -> I."""

    def __init__(self, n_items: int, hidden: int) -> None:
        super().__init__()
        self.enc_in = SparseInput(n_items, hidden)
        self.dec_out = dense_layer(hidden, n_items)

    def encode(self, x: Tensor) -> Tensor:
        """(B, I) sparse normalised input -> (B, H) hidden code."""
        return torch.tanh(self.enc_in(x))


class MultDAEScorer(Scorer):
    """state = hidden code of the clicks; score = W_2 state + b_2."""

    name = "mult-dae"
    predicts_ratings = False
    table_tensors = frozenset({"dec_out_w", "dec_out_b"})  # ``InnerProductScorer``

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) users (unused: every user is encoded), histories -> (B, H)."""
        x = normalized_input(history.to(self.device), self.config.get("click_threshold"), 0, False)
        return torch.tanh(torch.sparse.mm(x, self.t["enc_in_w"]) + self.t["enc_in_b"])

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, H), optional (C,) items -> (B, I) or (B, C) logits."""
        return linear_item_scores(state, self.t["dec_out_w"], self.t["dec_out_b"], items)

    def item_vectors(self) -> Tensor:
        """(I, H) rows of W_2."""
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


class MultDAE(ClickAutoencoder):
    """Denoising autoencoder with multinomial likelihood."""

    name = "mult-dae"
    Config = MultDAEConfig
    search_space = SEARCH_SPACE
    scorer_cls = MultDAEScorer
    config: MultDAEConfig
    net: _DAENet | None

    def build_net(self, n_items: int) -> _DAENet:
        return _DAENet(n_items, self.config.hidden_dim)

    def batch_loss(self, history: History) -> tuple[Tensor, dict[str, float]]:
        net = self._net()
        cfg = self.config
        # training batches come from the click matrix: every entry already is a click
        x = normalized_input(history, None, cfg.dropout, training=True)
        logits = dense_forward(net.dec_out, net.encode(x), cfg.bf16)
        nll = multinomial_nll(logits, history, click_values(history, None)).mean()
        loss = nll + self.weight_penalty()
        return loss, {"loss": loss.item(), "nll": nll.item()}

    def logits(self, history: History) -> Tensor:
        net = self._net()
        x = normalized_input(history, self.click_threshold, 0.0, training=False)
        return net.dec_out(net.encode(x))

    def scorer_tensors(self) -> dict[str, Tensor]:
        net = self._net()
        named = {
            "enc_in_w": net.enc_in.weight,
            "enc_in_b": net.enc_in.bias,
            "dec_out_w": net.dec_out.weight,
            "dec_out_b": net.dec_out.bias,
        }
        return {name: t.detach().clone().contiguous() for name, t in named.items()}

    def _net(self) -> _DAENet:
        if self.net is None:
            raise ModelError("mult-dae: call fit() first")
        return self.net
