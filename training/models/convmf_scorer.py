"""ConvMF / PMF serving form and the closed-form algebra both training and serving use.

Kim et al., RecSys 2016: eq. 8 (u_i) and eq. 9 (v_j) are ridge solves; serving
folds a new user in with the same eq. 8 solve, and scores a new item from its
text with the trained CNN (its eq. 9 value without ratings). The models and
their training live in ``convmf.py``; the serving card is there too.

Row layouts (k = factors):

* paper (``biases=false``): state u_i (k); item rows v_j (k); score u_i . v_j.
* biases (default): state (k+3) [u_i, 1, b_i, a_i]; rated item rows
  [v_j, mu + b_j, 1, 0], so state . row = mu + b_i + b_j + u_i . v_j; rows of
  items without ratings (scored from text) depend on ``new_item_anchor``:

  - ``user_mean``: [v~_j, b~_j, 0, 1] with a_i = m_i - u_i . v_bar - b_bar, so
    state . row = m_i + (b~_j - b_bar) + u_i . (v~_j - v_bar): the user's mean
    rating m_i, moved by how the text of the item compares with the text of a
    typical rated item ([v_bar, b_bar]: the rating-weighted mean CNN output
    over the rated items, tensor ``text_mean``). An empty document is that
    typical item, i.e. it is predicted at the user's mean.
  - ``model``: [v~_j, mu + b~_j, 1, 0], the model's own mu + b_i + b~_j +
    u_i . v~_j (the biased model read literally).

  [v~_j, b~_j] = cnn(W, X_j). m_i = (sum of the user's ratings + mu) / (n_i + 1):
  one pseudo-rating at mu, so a user with no history sits at mu.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from training.data import documents as D
from training.models.base import History, ModelError, Scorer
from training.models.common.linear import linear_item_scores
from training.models.text_cnn import TextCNN, run_cnn

ANCHORS = ("user_mean", "model")


# --------------------------------------------------------------------------- closed-form steps


def ridge_rows(
    rows: Tensor,
    cols: Tensor,
    targets: Tensor,
    table: Tensor,
    n_rows: int,
    lam: float | Tensor,
    prior: Tensor | None,
) -> Tensor:
    """Solve, for every row r, (sum_e x_e x_e^T + Lam) w_r = sum_e x_e y_e + Lam p_r.

    Lam = lam I, or diag(lam) when ``lam`` is a (k,) tensor (a lighter penalty
    on the bias coordinate). Observation e links row ``rows[e]`` to column
    ``cols[e]`` with target ``targets[e]``; x_e = ``table[cols[e]]`` (n_cols,
    k); ``prior`` (n_rows, k) holds the p_r (zero when None). With rows = users
    this is eq. 8; with rows = items and prior = cnn output, eq. 9. The per-row
    Gram matrices are one sparse (n_rows, n_cols) x (n_cols, k*k) product of
    the indicator matrix with the rows' outer products. Returns (n_rows, k),
    solved in float64.
    """
    k = table.shape[1]
    dev = table.device
    x = table.double()
    size = (n_rows, table.shape[0])
    index = torch.stack([rows, cols])
    ones = torch.ones_like(targets, dtype=torch.float64)
    indicator = torch.sparse_coo_tensor(index, ones, size, check_invariants=False)
    weighted = torch.sparse_coo_tensor(index, targets.double(), size, check_invariants=False)
    outer = (x.unsqueeze(2) * x.unsqueeze(1)).reshape(len(x), k * k)
    gram = torch.sparse.mm(indicator, outer).reshape(n_rows, k, k)
    diag = torch.as_tensor(lam, dtype=torch.float64, device=dev).expand(k)
    gram += torch.diag(diag)
    rhs = torch.sparse.mm(weighted, x)
    if prior is not None:
        rhs += diag * prior.double()
    return torch.linalg.solve(gram, rhs).to(table.dtype)


def design(rows: Tensor, biases: bool) -> Tensor:
    """(n, k[+1]) augmented rows [w, b] -> what the other side's solve regresses on: [w, 1]."""
    if not biases:
        return rows
    return torch.cat([rows[:, :-1], torch.ones_like(rows[:, :1])], dim=1)


def penalty(
    lam: float,
    lambda_bias: float | None,
    width: int,
    biases: bool,
    device: str | torch.device = "cpu",
) -> float | Tensor:
    """The ridge penalty of one side: lam, or (width,) [lam, ..., lambda_bias] with biases."""
    if not biases or lambda_bias is None:
        return lam
    diag = torch.full((width,), float(lam), device=device)
    diag[-1] = float(lambda_bias)
    return diag


def fold_in(
    history: History, items: Tensor, lambda_u: float | Tensor, offsets: Tensor | None = None
) -> Tensor:
    """(B, k) eq. 8 for each history row over the item design ``items`` (I, k).

    ``offsets`` (I,) are subtracted from the ratings first (mu + b_j with
    biases), so the solve fits what the item side does not already explain.
    """
    history = history.to(items.device)
    targets = history.values if offsets is None else history.values - offsets[history.indices]
    return ridge_rows(
        history.row_ids(), history.indices, targets, items, history.batch_size, lambda_u, None
    )


def anchored_means(history: History, mu: float) -> Tensor:
    """(B,) m_i = (sum of the row's ratings + mu) / (n_i + 1): the user's mean, mu when empty."""
    sums = torch.zeros(history.batch_size, device=history.device)
    sums.index_add_(0, history.row_ids(), history.values)
    return (sums + mu) / (history.lengths().to(sums.dtype) + 1)


# --------------------------------------------------------------------------- row layouts


def user_rows(augmented: Tensor, means: Tensor, text_mean: Tensor) -> Tensor:
    """(n, k+1) [u_i, b_i], (n,) m_i, (k+1,) [v_bar, b_bar] -> (n, k+3) [u_i, 1, b_i, a_i]."""
    u, b = augmented[:, :-1], augmented[:, -1:]
    a = means.unsqueeze(1) - u @ text_mean[:-1].unsqueeze(1) - text_mean[-1]
    return torch.cat([u, torch.ones_like(b), b, a], dim=1)


def rated_item_rows(augmented: Tensor, mu: float) -> Tensor:
    """(n, k+1) trained [v_j, b_j] -> (n, k+3) [v_j, mu + b_j, 1, 0]."""
    ones = torch.ones_like(augmented[:, :1])
    return torch.cat([augmented[:, :-1], augmented[:, -1:] + mu, ones, 0 * ones], dim=1)


def new_item_rows(augmented: Tensor, mu: float, anchor: str) -> Tensor:
    """(n, k+1) [v~_j, b~_j] from text -> (n, k+3) rows for items without ratings (see top)."""
    if anchor == "model":
        return rated_item_rows(augmented, mu)
    if anchor != "user_mean":
        raise ModelError(f"convmf: new_item_anchor must be one of {ANCHORS}, got {anchor!r}")
    ones = torch.ones_like(augmented[:, :1])
    return torch.cat([augmented, 0 * ones, ones], dim=1)


def cnn_tensor_name(key: str) -> str:
    """State-dict key -> artifact tensor name ("convs.0.weight" -> "cnn_convs_0_weight")."""
    return "cnn_" + key.replace(".", "_")


# --------------------------------------------------------------------------- scorers


class PMFScorer(Scorer):
    """state @ items^T; unknown users folded in by eq. 8 (with bias and anchor when ``biases``)."""

    name = "pmf"
    predicts_ratings = True
    table_tensors = frozenset({"items"})  # ``InnerProductScorer``; ConvMF's too

    @property
    def biases(self) -> bool:
        """Whether the tables carry the bias columns (older artifacts lack the key: no)."""
        return bool(self.config.get("biases", False))

    @property
    def factors(self) -> int:
        return int(self.config["factors"])

    @property
    def mu(self) -> float:
        return float(self.config.get("global_mean", 0.0))

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) users (-1: fold in), histories -> (B, D) [u_i, 1, b_i, a_i] or u_i."""
        users = users.to(self.device)
        state = self.t["user_factors"][users.clamp(min=0)].clone()
        unknown = torch.nonzero(users < 0).ravel()
        if len(unknown):
            sub = _history_rows(history.to(self.device), unknown)
            state[unknown] = self._fold_in(sub)
        return state

    def _fold_in(self, history: History) -> Tensor:
        """(B, D) eq. 8 on the item table; with biases [u, b_i] against [v_j, 1], mu + b_j off."""
        items, k = self.t["items"], self.factors
        lam_b = self.config.get("lambda_bias")
        lam = penalty(float(self.config["lambda_u"]), lam_b, k + 1, self.biases, self.device)
        if not self.biases:
            return fold_in(history, items, lam)
        # Design [v_j, 1] and offset mu + b_j for every row layout: a rated row holds
        # mu + b_j in column k; a text row anchored at the user's mean holds b~_j there
        # and a 1 in column k+2, so its offset gets mu back.
        ones = torch.ones_like(items[:, :1])
        offsets = items[:, k] + self.mu * items[:, k + 2]
        solved = fold_in(history, torch.cat([items[:, :k], ones], dim=1), lam, offsets)
        means = anchored_means(history, self.mu)
        return user_rows(solved, means, self.t["text_mean"])

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, D), optional (C,) items -> (B, I) or (B, C) predicted ratings (unclipped)."""
        return linear_item_scores(state, self.t["items"], items=items)  # biases folded in

    def item_vectors(self) -> Tensor:
        """(I, k) the latent item vectors v_j (bias columns left out: similarity is taste)."""
        return self.t["items"][:, : self.factors]

    def inner_product_table(self) -> Tensor:
        """(I, D) the item rows, biases folded in (``InnerProductScorer``).

        Rows a catalog adds or refreshes from text after the index was built are
        not in it; serving adds those items to every candidate set.
        """
        return self.t["items"]

    def inner_product_rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of ``inner_product_table`` (``InnerProductScorer``)."""
        return self.t["items"][start:stop]

    def inner_product_queries(self, state: Tensor) -> Tensor:
        """The state is the query."""
        return state


class ConvMFScorer(PMFScorer):
    """PMF scorer that also carries the CNN, so new items get rows from their text.

    It is a ``TextAwareScorer`` (``training.models.base``): serving grows its
    item table with ``with_text_items``.
    """

    name = "convmf"
    #: Documents per CNN call when ``with_text_items`` scores many texts at once.
    TEXT_BATCH: ClassVar[int] = 256

    def __init__(self, config: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        super().__init__(config, tensors)
        self._cnn: TextCNN | None = None

    def cnn(self) -> TextCNN:
        """The Sec. 3.2 CNN rebuilt from the ``cnn_*`` tensors (eval mode, cached)."""
        if self._cnn is None:
            out_dim = self.factors + int(self.biases)
            cnn = TextCNN.from_config(self.config, len(self.config["vocab"]), out_dim)
            names = {k: cnn_tensor_name(k) for k in cnn.state_dict()}
            missing = [n for n in names.values() if n not in self.t]
            if missing:
                raise ModelError(f"convmf: artifact lacks CNN tensors {missing}")
            cnn.load_state_dict({k: self.t[n] for k, n in names.items()})
            self._cnn = cnn.to(self.device).eval()
        return self._cnn

    def item_vectors_from_text(self, docs: list[str]) -> Tensor:
        """(n,) documents -> (n, D) new rows of ``items`` from cnn(W, X_j) (eq. 9, no ratings).

        Tokenised with the artifact's vocabulary exactly as in training. The
        rows have the layout of ``items`` (module docstring), so serving
        appends them to the table as they are. A document with no vocabulary
        word gets the prior mean: v_j = 0 in the paper's layout; with biases,
        the typical rated item (``text_mean``), i.e. the user's mean rating.
        """
        if isinstance(docs, str) or not all(isinstance(d, str) for d in docs):
            raise ModelError("convmf: item_vectors_from_text expects a list of strings")
        cnn = self.cnn()
        seqs = D.encode(docs, self.config["vocab"], int(self.config["max_len"]))
        out = torch.zeros(len(docs), cnn.out.out_features, device=self.device)
        if self.biases:
            out[:] = self.t["text_mean"]
        has = [i for i, s in enumerate(seqs) if s]
        if has:
            tokens = torch.as_tensor(D.pad([seqs[i] for i in has], max(cnn.windows)))
            lengths = torch.as_tensor([len(seqs[i]) for i in has])
            out[has] = run_cnn(cnn, tokens.to(self.device), lengths.to(self.device))
        if not self.biases:
            return out
        return new_item_rows(out, self.mu, str(self.config.get("new_item_anchor", "user_mean")))

    def with_text_items(
        self, texts: Sequence[str], refresh: Mapping[int, str] | None = None
    ) -> ConvMFScorer:
        """``TextAwareScorer``: a new scorer whose ``items`` table has rows from text.

        Kim et al. 2016, eq. 9 for an item without ratings: v_j = cnn(W, X_j),
        in the row layout of ``items`` (``item_vectors_from_text``). ``texts``
        are appended as items ``n_items, n_items + 1, ...``; ``refresh`` (index
        -> text) recomputes existing rows. The new scorer shares the CNN and
        every other tensor; ``self`` and its table are left untouched.
        """
        if isinstance(texts, str):
            raise ModelError("convmf: with_text_items expects a list of strings")
        refresh = dict(refresh or {})
        table = self.t["items"]  # (I, D)
        wrong = sorted(i for i in refresh if not 0 <= i < len(table))
        if wrong:
            raise ModelError(f"convmf: no item rows {wrong} to refresh; the table has {len(table)}")
        docs = [*texts, *refresh.values()]
        rows = table.new_zeros((0, table.shape[1]))
        if docs:
            batch = self.TEXT_BATCH
            with torch.no_grad():
                parts = [
                    self.item_vectors_from_text(docs[i : i + batch])
                    for i in range(0, len(docs), batch)
                ]
            rows = torch.cat(parts).to(table)
        grown = torch.cat([table, rows[: len(texts)]])  # (I + n, D): new memory
        if refresh:
            grown[torch.as_tensor(list(refresh), device=grown.device)] = rows[len(texts) :]
        scorer = type(self)({**self.config, "n_items": len(grown)}, {**self.t, "items": grown})
        scorer._cnn = self._cnn  # eval mode, read-only: no need to rebuild it
        return scorer

    def to(self, device: str | torch.device) -> ConvMFScorer:
        super().to(device)
        self._cnn = None
        return self


def _history_rows(history: History, rows: Tensor) -> History:
    """The sub-batch of ``history`` made of batch rows ``rows``."""
    indptr = history.indptr.tolist()
    items = [history.indices[indptr[r] : indptr[r + 1]].cpu().numpy() for r in rows.tolist()]
    values = [history.values[indptr[r] : indptr[r + 1]].cpu().numpy() for r in rows.tolist()]
    return History.from_lists(items, values, history.n_items, device=history.device)
