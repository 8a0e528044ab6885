"""EASE^R: Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.

A linear item-item autoencoder with a zero diagonal, trained in closed form:

    min_B ||X - X B||_F^2 + lambda ||B||_F^2   s.t. diag(B) = 0          (eq. 1)
    P = (X^T X + lambda I)^-1                                           (Sec. 3.1)
    B = I - P diagMat(1 / diag(P))   i.e. B_ij = -P_ij / P_jj, B_jj = 0  (eq. 8)

X is the binary user x item click matrix. The only hyper-parameter is the L2
weight lambda (the paper's ML-20M value is 500; tune it on validation users).

Serving card
    State        (B, I)  the user's click row x_u: EASE has no user factors, the
                         history *is* the state. That is fine for catalogs of a few
                         tens of thousands of items (ML-100K: 1,682 floats per
                         cached user); for millions of items cache the sparse row
                         instead — the memory trade-off of a model with no bottleneck.
    Item tensors b (I, I) the weight matrix B (float32; ML-20M's 20k items = 1.6 GB).
    Score        (B, I)  state @ B  (eq. 2: S_uj = x_u . B_:j).
    Ratings      none: ``predict`` raises NotARatingModel.

Training cost is one I x I Gram matrix and one I x I inverse: O(|X| + I^3),
independent of the number of users.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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
    Scorer,
    Validation,
)
from training.models.common.search import Float, SearchSpace
from training.models.common.settings import DeviceSetting
from training.trainer import single_step_report


@dataclass
class EASEConfig(DeviceSetting):
    """Steck 2019's single hyper-parameter plus how ratings become clicks.

    ``device`` is where the I x I inverse of eq. 8 is computed.
    """

    l2: float = field(
        default=500.0,
        metadata={"help": "lambda, the L2 weight on B (paper: 500 on ML-20M; tune on validation)"},
    )
    click_threshold: float | None = field(
        default=None,
        metadata={
            "help": "explicit ratings above this count as clicks (None: every record is a "
            "click; ignored on implicit data); serving histories follow the same rule"
        },
    )

    def check(self) -> None:
        super().check()
        if not self.l2 > 0:
            raise ModelError(f"l2 must be > 0 (got {self.l2}); with lambda = 0 X^T X is singular")


#: lambda only (Steck 2019); on ML-100K validation preferred 200 over the paper's 500
#: (docs/accuracy-topk.md), so the range spans both sides on a log scale.
SEARCH_SPACE = SearchSpace(l2=Float(10.0, 5000.0, log=True))


def click_rows(history: History, threshold: float | None) -> Tensor:
    """(B, I) dense 0/1 click rows of a history batch (a batch, never the whole matrix)."""
    if threshold is None:
        return history.to_dense(torch.ones_like(history.values))
    return history.to_dense((history.values > threshold).float())


def ease_weights(gram: Tensor, l2: float) -> Tensor:
    """(I, I) Gram X^T X -> B of eq. 8 (computed in float64: P's diagonal is divided by)."""
    if l2 <= 0:
        raise ModelError(f"ease: l2 must be > 0 (got {l2}); with lambda = 0 X^T X is singular")
    g = gram.double() + l2 * torch.eye(gram.shape[0], dtype=torch.float64, device=gram.device)
    p = torch.linalg.inv(g)  # P = (X^T X + lambda I)^-1
    b = -p / torch.diagonal(p).unsqueeze(0)  # B_ij = -P_ij / P_jj   (eq. 8)
    b.fill_diagonal_(0.0)  # the constraint diag(B) = 0 (eq. 1)
    return b.float()


class EASEScorer(Scorer):
    """state = click row, score = state @ B."""

    name = "ease"
    predicts_ratings = False

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) users (unused: no per-user parameters), histories -> (B, I) click rows."""
        return click_rows(history.to(self.device), self.config.get("click_threshold"))

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, I) clicks, optional (C,) items -> (B, I) or (B, C) = state @ B[:, items]."""
        weights = self.t["b"] if items is None else self.t["b"][:, items]
        return state @ weights

    def item_vectors(self) -> Tensor:
        """(I, I) column j of B: how much each item votes for j (for similar-item queries)."""
        return self.t["b"].T


class EASE(Model):
    """Closed-form EASE^R (one 'epoch')."""

    name = "ease"
    task = "topk"
    closed_form = True
    Config = EASEConfig
    search_space = SEARCH_SPACE
    scorer_cls = EASEScorer
    config: EASEConfig

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.b: Tensor | None = None
        self.click_threshold: float | None = None  # effective rule (None on implicit data)
        self._scorer_config: dict[str, object] = {}

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        started = time.perf_counter()
        # implicit data is all clicks already: the threshold only reads explicit ratings
        self.click_threshold = self.config.click_threshold if train.explicit else None
        clicks = train if self.click_threshold is None else train.binarize(self.click_threshold)
        x = clicks.to_csr("ones")
        gram = torch.as_tensor(
            (x.T @ x).toarray().astype(np.float64), device=resolve_device(self.config.device)
        )
        self.b = ease_weights(gram, self.config.l2)
        self._scorer_config = {
            **self.base_scorer_config(train),
            "click_threshold": self.click_threshold,
        }
        return single_step_report(
            time.perf_counter() - started, validation, self.to_scorer(), callbacks
        )

    def to_scorer(self) -> EASEScorer:
        if self.b is None:
            raise ModelError("ease: call fit() before to_scorer()")
        return EASEScorer(self._scorer_config, {"b": self.b.clone()})

    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I) = X_u B (eq. 2), computed with a sparse product on the raw history."""
        if self.b is None:
            raise ModelError("ease: call fit() before reference_scores()")
        history = history.to(self.b.device)
        values = torch.ones_like(history.values)
        if self.click_threshold is not None:
            values = (history.values > self.click_threshold).float()
        rows = torch.sparse_coo_tensor(
            torch.stack([history.row_ids(), history.indices]),
            values,
            size=(history.batch_size, history.n_items),
            check_invariants=False,
        )
        return torch.sparse.mm(rows, self.b)
