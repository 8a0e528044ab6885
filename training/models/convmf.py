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
their update is the PMF one (``pmf.py`` holds that alternating loop) (v_j = (U I_j U^T + lambda_V I)^-1 U R_j). PMF
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

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from training.data.interactions import Interactions
from training.models.base import (
    ModelConfig,
    ModelError,
)
from training.models.common.search import Fixed, Float, Int, SearchSpace
from training.models.convmf_scorer import (
    ConvMFScorer,
    cnn_tensor_name,
)
from training.models.pmf import PMF, PMFConfig
from training.models.text_cnn import (
    Documents,
    TextCNN,
    fit_passes,
    load_word_vectors,
    prepare_documents,
    run_cnn,
)

log = logging.getLogger(__name__)

ITEM_INITS = ("text", "random")

__all__ = ["PMF", "ConvMF", "ConvMFConfig", "PMFConfig"]


# --------------------------------------------------------------------------- config


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

    def check(self) -> None:
        super().check()
        if self.max_len < 1 or self.vocab_size < 1 or not self.windows:
            raise ModelError("max_len, vocab_size must be >= 1 and windows non-empty")
        if self.cnn_epochs < 0:
            raise ModelError(f"cnn_epochs must be >= 0, got {self.cnn_epochs}")
        if self.item_init not in ITEM_INITS:
            raise ModelError(f"item_init must be one of {ITEM_INITS}, got {self.item_init!r}")


#: PMF's priors (lambda_V weighs the CNN's pull on v_j, docs/accuracy-convmf.md),
#: the factors, and the CNN's dropout and lr; the CNN's epochs are capped for budget.
SEARCH_SPACE = SearchSpace(
    factors=Int(10, 100, log=True),
    lambda_u=Float(0.1, 1000.0, log=True),
    lambda_v=Float(0.1, 1000.0, log=True),
    dropout=Float(0.1, 0.5),
    cnn_lr=Float(1e-4, 3e-3, log=True),
    epochs=Fixed(10),
    patience=Fixed(3),
)


# --------------------------------------------------------------------------- model


class ConvMF(PMF):
    """PMF whose item prior mean is a CNN over the item document (eq. 9, 11)."""

    name = "convmf"
    Config = ConvMFConfig
    search_space = SEARCH_SPACE
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
