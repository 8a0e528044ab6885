"""AutoRec: Autoencoders Meet Collaborative Filtering (Sedhain, Menon, Sanner, Xie; WWW 2015).

One autoencoder reconstructs partially observed rating vectors r:

    h(r; θ) = f(W · g(V r + μ) + b)                              (eq. 1)
    min_θ  Σ_r ‖r − h(r; θ)‖²_O + λ/2 · (‖W‖²_F + ‖V‖²_F)         (eq. 2)

with g = sigmoid, f = identity, 500 hidden units, and ‖·‖_O counting only the
observed ratings (unobserved inputs are 0 and receive no error). On implicit
data (clicks, no rating column) "only the observed entries" would be all
ones, so there every entry is a target, unobserved ones 0: the usual
implicit-feedback reading of AutoRec in top-k comparisons (``all_entries``). The paper
optimised eq. 2 with L-BFGS / RProp on the full batch; here it is Adam on
mini-batches of rating vectors (the regulariser is scaled by the batch's share
of the vectors so one epoch sums to eq. 2), with the epoch chosen on
validation RMSE.

I-AutoRec (``i-autorec``) encodes each *item's* vector of user ratings
r_i ∈ R^U and predicts r̂_ui = (h(r_i))_u.

    State        (B, H+1)  the user's decoder row [W_u, b_u].
                           Fold-in for a user the artifact does not know (no
                           decoder row): ridge regression of the user's
                           observed ratings on the codes of the items they
                           rated, shrunk towards the average training user
                           [w̄, b̄]:  (XᵀX + λ_f I) w = Xᵀ r + λ_f w̄,  X = [H_items, 1].
                           With no history at all it is the average user.
                           With ``all_entries`` (implicit data) every item is a row
                           of X, target 1 for the user's items and 0 elsewhere.
    Item tensors item_codes (I, H) = g(V r_i + μ) on the training ratings.
    Score        (B, I)    item_codes · w_u + b_u

U-AutoRec (``u-autorec``) encodes each *user's* vector of item ratings
r_u ∈ R^I; fold-in is the encoder itself.

    State        (B, H)    h = g(V r_u + μ)
    Item tensors decoder_weight W (I, H), decoder_bias b (I,)
    Score        (B, I)    W · h + b
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

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
from training.models.common.linear import biased_table, linear_item_scores, ones_column
from training.models.common.search import Fixed, Float, Int, SearchSpace
from training.models.common.settings import TrainingConfig
from training.models.rating_levels import (
    check_history,
    require_explicit,
)
from training.trainer import EpochLoop, fit_epochs


@dataclass
class AutoRecConfig(TrainingConfig):
    """Hyper-parameters of AutoRec; defaults are the paper's where it gives them.

    A batch holds rating vectors: items' for I-AutoRec, users' for U-AutoRec.
    """

    batch_unit = "rating vectors"

    hidden: int = field(default=500, metadata={"help": "hidden units k (paper: 500)"})
    l2: float = field(
        default=1.0, metadata={"help": "λ of eq. 2, weight decay on W and V (paper tunes it)"}
    )
    lr: float = 1e-3
    epochs: int = 200
    batch_size: int = 256
    patience: int | None = 20
    fold_in_l2: float = field(
        default=1.0,
        metadata={"help": "I-AutoRec fold-in ridge λ_f towards the average user's decoder row"},
    )
    all_entries: bool | None = field(
        default=None,
        metadata={
            "help": "count every entry in ‖r − h(r)‖², unobserved as 0 (None: only on "
            "implicit data; the paper's explicit loss counts observed ratings only)"
        },
    )

    def check(self) -> None:
        super().check()
        _check_config(self)


#: The paper tunes lambda over {0.001, 0.01, 0.1, 1, 100, 1000} and the width k
#: (docs/accuracy-ratings.md; on ML-100K validation I-AutoRec's best lambda was 100); lr
#: for Adam.
SEARCH_SPACE = SearchSpace(
    hidden=Int(50, 600, log=True),
    l2=Float(1e-3, 1000.0, log=True),
    lr=Float(1e-4, 1e-2, log=True),
    epochs=Fixed(100),
    patience=Fixed(10),
)


class _AutoEncoder(nn.Module):
    """h(r) = f(W · g(V r + μ) + b) with g = sigmoid, f = identity (eq. 1)."""

    def __init__(self, n_inputs: int, hidden: int) -> None:
        super().__init__()
        self.encoder = nn.Linear(n_inputs, hidden)  # V (H, N), μ (H,)
        self.decoder = nn.Linear(hidden, n_inputs)  # W (N, H), b (N,)

    def encode(self, r: Tensor) -> Tensor:
        """(B, N) -> (B, H): g(V r + μ)."""
        return torch.sigmoid(self.encoder(r))

    def forward(self, r: Tensor) -> Tensor:
        """(B, N) -> (B, N): the reconstruction h(r)."""
        return self.decoder(self.encode(r))

    def weight_penalty(self) -> Tensor:
        """‖W‖²_F + ‖V‖²_F (biases are not regularised, eq. 2)."""
        return self.encoder.weight.square().sum() + self.decoder.weight.square().sum()


def _check_config(config: AutoRecConfig) -> None:
    if config.hidden < 1:
        raise ModelError(f"hidden must be at least 1, got {config.hidden}")
    if config.l2 < 0 or config.fold_in_l2 <= 0:
        raise ModelError(
            f"l2 must be >= 0 and fold_in_l2 > 0; got l2={config.l2}, "
            f"fold_in_l2={config.fold_in_l2}"
        )


def _dense_rows(
    matrix: sp.csr_matrix, rows: np.ndarray, device: torch.device
) -> tuple[Tensor, Tensor]:
    """(B, N) dense ratings of ``rows`` (0 = unobserved) and their observed mask."""
    batch = History.from_csr(matrix, rows, device=device)
    return batch.to_dense(), batch.to_dense(torch.ones_like(batch.values))


class _AutoRecBase(Model):
    """Training shared by I- and U-AutoRec: they differ in which vectors are encoded."""

    task: ClassVar = "ratings"
    Config: ClassVar[type[ModelConfig]] = AutoRecConfig
    search_space = SEARCH_SPACE
    item_based: ClassVar[bool]
    trains_distributed: ClassVar[bool] = True  # ranks share the rows: items (I-) or users (U-)

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.net: _AutoEncoder | None = None
        self.train_matrix: sp.csr_matrix | None = None  # (U, I) ratings
        self._scorer_config: dict[str, Any] = {}

    @property
    def cfg(self) -> AutoRecConfig:
        assert isinstance(self.config, AutoRecConfig)
        return self.config

    def _inputs(self) -> sp.csr_matrix:
        """Rows = the vectors the autoencoder reconstructs (items for I, users for U)."""
        assert self.train_matrix is not None
        return self.train_matrix.T.tocsr() if self.item_based else self.train_matrix

    def _all_entries(self, train: Interactions) -> bool:
        """Whether every entry is a target (implicit data by default) or the observed only."""
        all_entries = self.cfg.all_entries
        return (not train.explicit) if all_entries is None else all_entries

    def check_data(self, train: Interactions) -> None:
        """Ratings to reconstruct: explicit ones (observed entries only), or any record."""
        if not self._all_entries(train):
            require_explicit(train, self.name)
        elif len(train) == 0:
            raise UnsuitableData(f"model '{self.name}' cannot train on an empty interaction set")

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        """Minimise eq. 2 with Adam; keep the epoch with the best validation RMSE."""
        cfg = self.cfg
        all_entries = self._all_entries(train)
        self.check_data(train)
        rng = seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
        self.train_matrix = train.to_csr()
        self._scorer_config = {**self.base_scorer_config(train), "all_entries": all_entries}
        inputs = self._inputs()
        trained_rows = np.flatnonzero(np.diff(inputs.indptr))  # vectors with ≥ 1 rating
        self.net = _AutoEncoder(inputs.shape[1], cfg.hidden).to(device)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        n_observed = max(len(trained_rows) * inputs.shape[1] if all_entries else inputs.nnz, 1)
        # On N ranks each reports 1/N of the epoch's rows; the trainer averages their losses.
        n_observed = max(n_observed // distributed.world_size(), 1)
        net = self.net
        forward = distributed.data_parallel(net)

        def batch_loss(r: Tensor, observed: Tensor, share: float) -> tuple[Tensor, Tensor]:
            residual = net(r) - r
            if not all_entries:
                residual = residual * observed  # ‖r − h(r)‖²_O
            error = residual.square().sum()
            return error, error + share * cfg.l2 / 2 * net.weight_penalty()  # eq. 2

        def run_epoch(epoch: int) -> dict[str, float]:
            net.train()
            squared, objective = 0.0, 0.0
            for rows in distributed.epoch_batches(
                len(trained_rows), cfg.batch_size, rng, epoch, cfg.seed
            ):
                r, observed = _dense_rows(inputs, trained_rows[rows], device)
                share = len(rows) / len(trained_rows)
                error, loss = forward(lambda: batch_loss(r, observed, share))  # noqa: B023
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                squared += float(error.detach())
                objective += float(loss.detach())
            return {"loss": objective / n_observed, "train_rmse": (squared / n_observed) ** 0.5}

        loop = EpochLoop(
            run_epoch=run_epoch,
            to_scorer=self.to_scorer,
            get_state=lambda: self.net.state_dict() if self.net is not None else None,
            set_state=lambda state: self.net.load_state_dict(state) if self.net else None,
        )
        return fit_epochs(loop, cfg.epochs, validation, callbacks, patience=cfg.patience)

    @torch.no_grad()
    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I) the autoencoder's own reconstruction, eq. 1 on the full input vectors.

        I-AutoRec reconstructs every item vector and reads row u; U-AutoRec
        reconstructs the users' history vectors.
        """
        net = self._require_fitted()
        device = net.decoder.weight.device
        if self.item_based:
            inputs = self._inputs()
            dense = _dense_rows(inputs, np.arange(inputs.shape[0]), device)[0]
            return net(dense)[:, users.to(device)].T
        return net(history.to(device).to_dense())

    def _require_fitted(self) -> _AutoEncoder:
        if self.net is None or self.train_matrix is None:
            raise ModelError(f"model '{self.name}' is not trained yet; call fit() first")
        return self.net


# --------------------------------------------------------------------------- I-AutoRec


class IAutoRecScorer(Scorer):
    """I-AutoRec serving form: decoder row per user, codes per item."""

    name: ClassVar[str] = "i-autorec"
    predicts_ratings: ClassVar[bool] = True
    table_tensors = frozenset({"item_codes"})  # ``InnerProductScorer``

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) user indices (-1 = fold in) + histories -> (B, H+1) [w_u, b_u]."""
        codes = self.t["item_codes"]
        check_history(history, codes.shape[0], self.name)
        users = users.to(codes.device).long()
        if users.shape[0] != history.batch_size:
            raise ModelError(
                f"{users.shape[0]} users but {history.batch_size} history rows; they must match"
            )
        if users.numel() and int(users.max()) >= self.t["user_weights"].shape[0]:
            raise ModelError(f"user index out of range for this '{self.name}' artifact")
        known = self.t["user_weights"][users.clamp(min=0)]
        state = torch.cat([known, self.t["user_bias"][users.clamp(min=0), None]], dim=1)
        history = history.to(codes.device)
        for b in torch.nonzero(users < 0).flatten().tolist():
            lo, hi = int(history.indptr[b]), int(history.indptr[b + 1])
            state[b] = self._fold_in(history.indices[lo:hi], history.values[lo:hi])
        return state

    def _fold_in(self, items: Tensor, ratings: Tensor) -> Tensor:
        """Ridge solve (XᵀX + λ_f I) w = Xᵀ r + λ_f w̄ with X = [codes of rated items, 1].

        With ``all_entries`` the user's targets cover every item (their items'
        values, 0 elsewhere), as in training, so X holds every item's code.
        """
        codes = self.t["item_codes"]
        lam = float(self.config["fold_in_l2"])
        prior = self.t["mean_user"]
        if self.config.get("all_entries"):
            target = torch.zeros(codes.shape[0], device=codes.device)
            target[items] = ratings
            items = torch.arange(codes.shape[0], device=codes.device)
            ratings = target
        x = torch.cat([codes[items], torch.ones(len(items), 1, device=codes.device)], dim=1)
        eye = torch.eye(x.shape[1], device=codes.device)
        return torch.linalg.solve(x.T @ x + lam * eye, x.T @ ratings + lam * prior)

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, H+1) -> (B, I) or (B, C): H · w_u + b_u (eq. 1 read at row u)."""
        return linear_item_scores(state[:, :-1], self.t["item_codes"], items=items) + state[:, -1:]

    def item_vectors(self) -> Tensor:
        return self.t["item_codes"]

    def inner_product_table(self) -> Tensor:
        """(I, H) item codes; the user bias b_u is the same for every item, so it is
        left out of the search and only the exact re-scoring adds it (``InnerProductScorer``)."""
        return self.t["item_codes"]

    def inner_product_rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of ``inner_product_table`` (``InnerProductScorer``)."""
        return self.t["item_codes"][start:stop]

    def inner_product_queries(self, state: Tensor) -> Tensor:
        """(B, H+1) [w_u, b_u] -> (B, H) w_u."""
        return state[:, :-1]


class IAutoRec(_AutoRecBase):
    """I-AutoRec: the item-based autoencoder, the paper's best variant."""

    name: ClassVar[str] = "i-autorec"
    scorer_cls: ClassVar[type[Scorer]] = IAutoRecScorer
    item_based: ClassVar[bool] = True

    @torch.no_grad()
    def to_scorer(self) -> IAutoRecScorer:
        net = self._require_fitted()
        net.eval()
        device = net.decoder.weight.device
        inputs = self._inputs()  # (I, U)
        codes = torch.cat(
            [
                net.encode(_dense_rows(inputs, rows, device)[0])
                for rows in np.array_split(
                    np.arange(inputs.shape[0]), max(1, inputs.shape[0] // 1024)
                )
            ]
        )
        weights, bias = net.decoder.weight.detach().clone(), net.decoder.bias.detach().clone()
        assert self.train_matrix is not None  # checked by _require_fitted
        rated = torch.as_tensor(np.diff(self.train_matrix.indptr) > 0, device=device)
        mean_user = torch.cat([weights[rated], bias[rated, None]], dim=1).mean(dim=0)
        # A user with no training rating has an untrained decoder row: serve the average user.
        weights[~rated], bias[~rated] = mean_user[:-1], mean_user[-1]
        tensors = {
            "item_codes": codes,
            "user_weights": weights,
            "user_bias": bias,
            "mean_user": mean_user,
        }
        return IAutoRecScorer(self._scorer_config, tensors)


# --------------------------------------------------------------------------- U-AutoRec


class UAutoRecScorer(Scorer):
    """U-AutoRec serving form: the encoder is the fold-in, the decoder the item table."""

    name: ClassVar[str] = "u-autorec"
    predicts_ratings: ClassVar[bool] = True
    table_tensors = frozenset({"decoder_weight", "decoder_bias"})  # ``InnerProductScorer``

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) users (unused: the state is the history's code) + histories -> (B, H)."""
        weight = self.t["encoder_weight"]  # V (H, I)
        check_history(history, weight.shape[1], self.name)
        history = history.to(weight.device)
        pre = self.t["encoder_bias"].expand(history.batch_size, -1).clone()
        # V r_u as a sum over the user's observed ratings: never densify (B, I).
        pre.index_add_(0, history.row_ids(), weight.T[history.indices] * history.values[:, None])
        return torch.sigmoid(pre)  # g(V r_u + μ), eq. 1

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, H) -> (B, I) or (B, C): W · h + b."""
        return linear_item_scores(state, self.t["decoder_weight"], self.t["decoder_bias"], items)

    def item_vectors(self) -> Tensor:
        return self.t["decoder_weight"]

    def inner_product_table(self) -> Tensor:
        """(I, H+1) [W_i, b_i] (``InnerProductScorer``)."""
        return biased_table(self.t["decoder_weight"], self.t["decoder_bias"])

    def inner_product_rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of ``inner_product_table`` (``InnerProductScorer``)."""
        return biased_table(
            self.t["decoder_weight"][start:stop], self.t["decoder_bias"][start:stop]
        )

    def inner_product_queries(self, state: Tensor) -> Tensor:
        """(B, H) -> (B, H+1) [g(V r_u + mu), 1]."""
        return ones_column(state)


class UAutoRec(_AutoRecBase):
    """U-AutoRec: the user-based autoencoder (the paper's weaker variant)."""

    name: ClassVar[str] = "u-autorec"
    scorer_cls: ClassVar[type[Scorer]] = UAutoRecScorer
    item_based: ClassVar[bool] = False

    @torch.no_grad()
    def to_scorer(self) -> UAutoRecScorer:
        net = self._require_fitted()
        tensors = {
            "encoder_weight": net.encoder.weight.detach().clone(),
            "encoder_bias": net.encoder.bias.detach().clone(),
            "decoder_weight": net.decoder.weight.detach().clone(),
            "decoder_bias": net.decoder.bias.detach().clone(),
        }
        return UAutoRecScorer(self._scorer_config, tensors)
