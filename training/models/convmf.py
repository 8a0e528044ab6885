"""ConvMF: Kim, Park, Oh, Lee & Yu, "Convolutional Matrix Factorization for Document
Context-Aware Recommendation", RecSys 2016 — and PMF, the same code without the CNN.

Probabilistic matrix factorisation whose item prior is centred on a CNN's
reading of the item's document:

    r_ij ~ N(u_i . v_j, sigma^2),  u_i ~ N(0, sigma_U^2 I)                 (eq. 1-2)
    v_j = cnn(W, X_j) + eps_j,     eps_j ~ N(0, sigma_V^2 I)                (eq. 3-4)
    L = sum_ij I_ij/2 (r_ij - u_i.v_j)^2 + lambda_U/2 sum_i ||u_i||^2
        + lambda_V/2 sum_j ||v_j - cnn(W, X_j)||^2 + (weight decay on W)    (eq. 7)

trained by alternating (Sec. 3.3), one outer iteration = one trainer "epoch":

    u_i <- (V I_i V^T + lambda_U I_K)^-1 V R_i                               (eq. 8)
    v_j <- (U I_j U^T + lambda_V I_K)^-1 (U R_j + lambda_V cnn(W, X_j))       (eq. 9)
    W   <- back-propagation on lambda_V/2 sum_j ||v_j - cnn(W, X_j)||^2       (eq. 11)

for ``cnn_epochs`` passes of RMSprop per iteration (the authors' code; the
CNN itself is ``training.models.text_cnn``).

**Biases (extension, ``biases=True``, the default).** The paper models raw
ratings as u_i . v_j. Then an item with no ratings, v_j = cnn(W, X_j), gets
all of its rating level from a tanh-bounded CNN output, and a near-zero
vector predicts ~0 rather than a typical rating. With ``biases`` the model is

    r_hat_ij = mu + b_i + b_j + u_i . v_j      (mu: global training mean)

where b_i is one more user coordinate whose item partner is fixed at 1, and
b_j one more item coordinate whose user partner is fixed at 1. So eq. 8 and
eq. 9 stay the same ridge solves over the augmented rows [u_i, b_i] (item
design [v_j, 1], targets r_ij - mu - b_j) and [v_j, b_j] (user design
[u_i, 1], targets r_ij - mu - b_i); ``lambda_bias`` optionally gives the
biases their own ridge penalty (default: lambda_U / lambda_V as the factors).
The CNN predicts the whole augmented row cnn(W, X_j) = [v~_j, b~_j] (k + 1
outputs), so a new item's bias comes from its text too. ``biases=False`` is
the paper's model exactly.

**New items (extension, ``new_item_anchor``).** Read literally, the biased
model scores an item without ratings mu + b_i + b~_j + u_i . v~_j. On
MovieLens that loses to the plain user-mean fallback (docs/accuracy-convmf.md):
b_i is the user's offset *given* the item biases, not their mean rating, and
the text-predicted b~_j is shrunk toward an average over all documents. The
default ``user_mean`` anchors a new item at the user's mean rating m_i and
moves it by how its text compares with the text of a typical rated item:
m_i + (b~_j - b_bar) + u_i . (v~_j - v_bar). Still one dot product
(``convmf_scorer`` has the row layouts).

Items without a document have no CNN term: their prior mean is 0, i.e.
their update is the PMF one (v_j = (U I_j U^T + lambda_V I)^-1 U R_j). PMF
(``pmf``) is exactly that for every item (prior N(0, lambda_V^-1 I)).

Serving card (k = factors; D = k + 3 with biases, k without)
    State        (B, D) [u_i, 1, b_i, a_i] (biases; a_i = m_i - u_i . v_bar - b_bar)
                 or u_i: trained for known users; unknown users folded in by eq. 8
                 on the item table (ridge over their rated items, bias included)
                 and m_i from their history.
    Item tensors items (I, D): rated [v_j, mu + b_j, 1, 0]; scored from text
                 [v~_j, b~_j, 0, 1] (biases, ``user_mean`` anchor) or v_j (paper).
                 ``text_mean`` (k+1,) [v_bar, b_bar]. ConvMF also carries the CNN
                 (``cnn_*`` tensors) and its vocabulary (``vocab`` in the scorer
                 config), so ``item_vectors_from_text(docs) -> (n, D)`` gives a new
                 item's row of ``items`` from cnn(W, X_j) — its eq. 9 value when it
                 has no ratings — ready to append to the table.
    Score        (B, I) state @ items^T: mu + b_i + b_j + u_i . v_j for rated items,
                 m_i + (b~_j - b_bar) + u_i . (v~_j - v_bar) for text-scored ones.
    Ratings      yes (``predict`` clips into the training rating range).

Artifacts written before the biases extension have no ``biases`` key: they
are read as ``biases=False`` (items = V), so they keep serving unchanged.

Documents come from ``train.item_meta[id]["text"]``; when no item has text
and ``plots`` (default ``$GENREC_DATA_DIR/ml-1m-plots/movies_extrainfos.dat``)
exists, IMDB plots are matched to the items by title + year
(``training.data.documents.attach_plots``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

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
    Validation,
    seed_everything,
)
from training.models.common.settings import EpochSettings
from training.models.convmf_scorer import (
    ANCHORS,
    ConvMFScorer,
    PMFScorer,
    cnn_tensor_name,
    design,
    new_item_rows,
    penalty,
    rated_item_rows,
    ridge_rows,
    user_rows,
)
from training.models.text_cnn import (
    Documents,
    TextCNN,
    fit_passes,
    load_word_vectors,
    prepare_documents,
    run_cnn,
)
from training.trainer import EpochLoop, fit_epochs

log = logging.getLogger(__name__)

ITEM_INITS = ("text", "random")


# --------------------------------------------------------------------------- configs


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


@dataclass
class ConvMFConfig(PMFConfig):
    """ConvMF: PMF + the Sec. 3.2 CNN on item documents (Sec. 4.1 preprocessing)."""

    emb_dim: int = field(default=200, metadata={"help": "word embedding dimension"})
    windows: tuple[int, ...] = field(
        default=(3, 4, 5), metadata={"help": "convolution window sizes (eq. 5)"}
    )
    filters: int = field(default=100, metadata={"help": "filters per window size"})
    proj_dim: int = field(default=200, metadata={"help": "hidden size of the eq. 10 projection"})
    dropout: float = field(default=0.2, metadata={"help": "dropout before the output layer"})
    max_len: int = field(default=300, metadata={"help": "max words per document (Sec. 4.1)"})
    vocab_size: int = field(default=8000, metadata={"help": "vocabulary cap (Sec. 4.1)"})
    max_df: float = field(
        default=0.5, metadata={"help": "drop words in more than this share of documents"}
    )
    cnn_epochs: int = field(
        default=5, metadata={"help": "CNN passes per outer iteration (authors: 5)"}
    )
    cnn_batch_size: int = field(default=128, metadata={"help": "documents per CNN mini-batch"})
    cnn_lr: float = field(default=1e-3, metadata={"help": "RMSprop learning rate of the CNN"})
    item_init: str = field(
        default="text",
        metadata={
            "help": "initial V: text (v_j = cnn(W, X_j) of the untrained CNN where there is a "
            "document, the authors' code) or random (every row Xavier-uniform, "
            "U(+-sqrt(6 / (I + k))), Cornac's start)"
        },
    )
    weight_decay: float = field(default=0.0, metadata={"help": "L2 on the CNN weights W"})
    plots: str | None = field(
        default=None,
        metadata={
            "help": "plot file to match when item_meta has no text "
            "(None: $GENREC_DATA_DIR/ml-1m-plots/movies_extrainfos.dat if present)"
        },
    )
    word_vectors: str | None = field(
        default=None,
        metadata={"help": "GloVe-style text file ('word v1 .. vd') to initialise embeddings"},
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
    Config = PMFConfig
    scorer_cls: type[PMFScorer] = PMFScorer
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

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        cfg = self.config
        if len(train) == 0:
            raise ModelError(f"{self.name}: the training data has no ratings")
        if cfg.lambda_u <= 0 or cfg.lambda_v <= 0:
            raise ModelError(f"{self.name}: lambda_u and lambda_v must be > 0")
        if cfg.lambda_bias is not None and cfg.lambda_bias <= 0:
            raise ModelError(f"{self.name}: lambda_bias must be > 0 (or None)")
        if cfg.factors < 1:
            raise ModelError(f"{self.name}: factors must be >= 1, got {cfg.factors}")
        if cfg.new_item_anchor not in ANCHORS:
            raise ModelError(
                f"{self.name}: new_item_anchor must be one of {ANCHORS}, got {cfg.new_item_anchor!r}"
            )
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


class ConvMF(PMF):
    """PMF whose item prior mean is a CNN over the item document (eq. 9, 11)."""

    name = "convmf"
    Config = ConvMFConfig
    scorer_cls = ConvMFScorer
    config: ConvMFConfig

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.cnn: TextCNN | None = None
        self.docs: Documents | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._n_items = 0

    def _prepare(self, train: Interactions, rng: np.random.Generator, device: torch.device) -> None:
        cfg = self.config
        if cfg.max_len < 1 or cfg.vocab_size < 1 or not cfg.windows:
            raise ModelError("convmf: max_len, vocab_size must be >= 1 and windows non-empty")
        if cfg.cnn_epochs < 0:
            raise ModelError(f"convmf: cnn_epochs must be >= 0, got {cfg.cnn_epochs}")
        if cfg.item_init not in ITEM_INITS:
            raise ModelError(
                f"convmf: item_init must be one of {ITEM_INITS}, got {cfg.item_init!r}"
            )
        self._n_items = train.n_items
        self.docs = prepare_documents(
            train, cfg.plots, cfg.vocab_size, cfg.max_df, cfg.max_len, max(cfg.windows), device
        )
        self.cnn = TextCNN(
            len(self.docs.vocab),
            cfg.emb_dim,
            cfg.windows,
            cfg.filters,
            cfg.proj_dim,
            self.width,
            cfg.dropout,
        ).to(device)
        if cfg.word_vectors:
            table, found = load_word_vectors(cfg.word_vectors, self.docs.vocab, cfg.emb_dim)
            with torch.no_grad():
                self.cnn.embedding.weight[1:] = table.to(device)
            log.info("convmf: %d of %d words have a pre-trained vector", found, len(table))
        self._optimizer = torch.optim.RMSprop(
            self.cnn.parameters(), lr=cfg.cnn_lr, weight_decay=cfg.weight_decay
        )

    def _prior(self) -> Tensor | None:
        """(I, k[+1]) cnn(W, X_j) for items with a document, 0 for the rest."""
        if self.cnn is None or self.docs is None or len(self.docs.items) == 0:
            return None
        prior = torch.zeros(self._n_items, self.width, device=self.docs.tokens.device)
        prior[self.docs.items] = run_cnn(self.cnn, self.docs.tokens, self.docs.lengths)
        return prior

    def _after_item_step(self, v: Tensor, rng: np.random.Generator) -> dict[str, float]:
        """eq. 11: ``cnn_epochs`` RMSprop passes fitting cnn(W, X_j) to v_j (rated items)."""
        cnn, docs, opt = self.cnn, self.docs, self._optimizer
        if cnn is None or docs is None or opt is None or not bool(docs.trainable.any()):
            return {}
        rows = torch.nonzero(docs.trainable).ravel()
        loss = fit_passes(
            cnn,
            opt,
            docs.tokens[rows],
            docs.lengths[rows],
            v[docs.items[rows]].detach(),
            self.config.cnn_epochs,
            self.config.cnn_batch_size,
            rng,
        )
        return {"cnn_loss": loss}

    def _start_from_prior(self) -> bool:
        # The authors start V at the untrained CNN's output; with a random start (Cornac's)
        # the first eq. 8 solve does not see near-identical item rows. See docs/peers.md.
        return self.config.item_init == "text"

    def _get_cnn_state(self) -> dict[str, Tensor] | None:
        return None if self.cnn is None else self.cnn.state_dict()

    def _set_cnn_state(self, state: dict[str, Tensor] | None) -> None:
        if self.cnn is not None and state is not None:
            self.cnn.load_state_dict(state)

    def _extra_scorer_config(self) -> dict[str, Any]:
        return {"vocab": list(self.docs.vocab) if self.docs is not None else []}

    def _extra_tensors(self) -> dict[str, Tensor]:
        if self.cnn is None:
            return {}
        return {
            cnn_tensor_name(k): t.detach().clone().float() for k, t in self.cnn.state_dict().items()
        }
