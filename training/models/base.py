"""The one model interface: trainable ``Model`` and its serving form, ``Scorer``.

Serving treats every model alike through ``Scorer``:

* ``user_state(users, history) -> (B, D)`` — everything that depends only on
  the user. It is what the service caches (Redis) and what fold-in computes
  for a user the artifact has never seen.
* ``score(state, items=None) -> (B, I)`` — the model's last item-indexed layer
  plus at most an element-wise reduction. Higher is better. No masking and no
  top-k: serving owns those, so offline evaluation and production rank alike.

A scorer is a pure function of a JSON-able ``config`` and a dict of named
tensors, which is exactly what an artifact stores (safetensors, never pickle).

This file is the whole contract a model implements (config, batch history,
model, scorer and the optional capabilities), which is why it runs a little
past 400 lines: a newcomer reads one file to learn the interface.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from training.data.interactions import Interactions
from training.errors import ModelError as ModelError  # defined apart to avoid a cycle (errors.py)
from training.errors import UnsuitableData as UnsuitableData
from training.models.common.search import SearchSpace
from training.models.limits import size_problem
from training.segments import ByActivity

Task = Literal["ratings", "topk"]


class NotARatingModel(ModelError):
    """Rating prediction asked of a model that only ranks (serving answers 4xx)."""


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class History:
    """A batch of user histories in CSR form on one device.

    Row ``b`` holds the items (``indices``) and ratings (``values``, 1.0 for
    clicks) of the b-th user in the batch. Models read it densely or sparsely
    as they need; nobody densifies the whole user x item matrix.
    """

    indptr: Tensor  # (B+1,) int64
    indices: Tensor  # (nnz,) int64 item indices
    values: Tensor  # (nnz,) float32
    n_items: int

    @classmethod
    def from_csr(
        cls,
        matrix: sp.csr_matrix,
        rows: np.ndarray | None = None,
        device: str | torch.device = "cpu",
    ) -> History:
        """Rows ``rows`` (all when None) of a (U, I) CSR matrix."""
        sub = matrix if rows is None else matrix[np.asarray(rows)]
        sub = sp.csr_matrix(sub)
        return cls(
            indptr=torch.as_tensor(sub.indptr.astype(np.int64), device=device),
            indices=torch.as_tensor(sub.indices.astype(np.int64), device=device),
            values=torch.as_tensor(sub.data.astype(np.float32), device=device),
            n_items=matrix.shape[1],
        )

    @classmethod
    def from_lists(
        cls,
        items: list[list[int]] | list[np.ndarray],
        ratings: list[list[float]] | list[np.ndarray] | None,
        n_items: int,
        device: str | torch.device = "cpu",
    ) -> History:
        """One row per user from Python lists (the serving path)."""
        lengths = [len(r) for r in items]
        indptr = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        flat_items = (
            np.concatenate([np.asarray(r, dtype=np.int64) for r in items])
            if items
            else np.zeros(0, dtype=np.int64)
        )
        if ratings is None:
            flat_values = np.ones(int(indptr[-1]), dtype=np.float32)
        else:
            flat_values = (
                np.concatenate([np.asarray(r, dtype=np.float32) for r in ratings])
                if ratings
                else np.zeros(0, dtype=np.float32)
            )
        return cls(
            indptr=torch.as_tensor(indptr, device=device),
            indices=torch.as_tensor(np.asarray(flat_items, dtype=np.int64), device=device),
            values=torch.as_tensor(np.asarray(flat_values, dtype=np.float32), device=device),
            n_items=n_items,
        )

    @property
    def batch_size(self) -> int:
        return int(self.indptr.shape[0]) - 1

    @property
    def device(self) -> torch.device:
        return self.indptr.device

    def lengths(self) -> Tensor:
        """(B,) number of interactions per row."""
        return self.indptr[1:] - self.indptr[:-1]

    def row_ids(self) -> Tensor:
        """(nnz,) the batch row each entry belongs to."""
        return torch.repeat_interleave(
            torch.arange(self.batch_size, device=self.device), self.lengths()
        )

    def to_sparse(self, values: Tensor | None = None) -> Tensor:
        """(B, I) torch sparse CSR tensor (optionally with replaced values)."""
        return torch.sparse_csr_tensor(
            self.indptr,
            self.indices,
            self.values if values is None else values,
            size=(self.batch_size, self.n_items),
        )

    def to_dense(self, values: Tensor | None = None) -> Tensor:
        """(B, I) dense tensor: fine for a batch, never for the whole matrix."""
        dense = torch.zeros(self.batch_size, self.n_items, device=self.device)
        if self.indices.numel():
            dense[self.row_ids(), self.indices] = self.values if values is None else values
        return dense

    def to(self, device: str | torch.device) -> History:
        return History(
            self.indptr.to(device), self.indices.to(device), self.values.to(device), self.n_items
        )


# --------------------------------------------------------------------------- scorer


class Scorer(ABC):
    """Serving form of a trained model: user state, item tensors, cheap score.

    Subclasses read their tensors by name from ``self.t`` and their settings
    from ``self.config``; both come straight from the artifact.
    """

    name: ClassVar[str]
    predicts_ratings: ClassVar[bool] = False
    #: For an ``InnerProductScorer``: the tensors ``inner_product_table``/``_rows`` and
    #: ``item_vectors`` read, all an index build needs (``training.ann.index_version``
    #: loads only these: a Mult-VAE's encoder is as large as its item table and no index
    #: reads it). None for other scorers.
    table_tensors: ClassVar[frozenset[str] | None] = None

    def __init__(self, config: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
        self.config: dict[str, Any] = dict(config)
        self.t: dict[str, Tensor] = dict(tensors)

    # -- the three operations serving uses ---------------------------------------------

    @abstractmethod
    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) training user indices (-1: unknown, fold in) + histories -> (B, D).

        Serving passes a known index only while the user has no interactions
        after the artifact's cutoff; otherwise -1 with the merged history, so
        models with per-user parameters fold in from the full history.
        """

    @abstractmethod
    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, D) state, optional (C,) candidate item indices -> (B, I) or (B, C)."""

    def predict(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """Predicted ratings, clipped into the training rating range; (B, I) or (B, C)."""
        if not self.predicts_ratings:
            raise NotARatingModel(f"model '{self.name}' ranks items but does not predict ratings")
        low, high = self.rating_range
        return self.score(state, items).clamp(low, high)

    def item_vectors(self) -> Tensor | None:
        """(I, d) item representation for similar-item queries; None if the model has none."""
        return None

    # -- (de)serialisation ----------------------------------------------------------------

    def tensors(self) -> dict[str, Tensor]:
        return {k: v.detach().contiguous() for k, v in self.t.items()}

    @classmethod
    def from_tensors(cls, config: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> Scorer:
        return cls(config, tensors)

    def to(self, device: str | torch.device) -> Scorer:
        self.t = {k: v.to(device) for k, v in self.t.items()}
        return self

    # -- facts serving needs ---------------------------------------------------------------

    @property
    def n_items(self) -> int:
        return int(self.config["n_items"])

    @property
    def rating_range(self) -> tuple[float, float]:
        low, high = self.config.get("rating_range", (1.0, 5.0))
        return float(low), float(high)

    @property
    def device(self) -> torch.device:
        for v in self.t.values():
            return v.device
        return torch.device("cpu")


# --------------------------------------------------------------------------- text-aware scorers


@runtime_checkable
class TextAwareScorer(Protocol):
    """Optional capability of a ``Scorer``: rows for items it was never trained on, from text.

    A content model can place an item nobody has rated: in ConvMF (Kim et al.,
    RecSys 2016, eq. 9 without ratings) its vector is v_j = cnn(W, X_j). The
    serving catalog (``app.catalog``) grows a loaded model through this one
    method, so it needs no knowledge of the scorer's tensors or layout. Check
    for it with ``isinstance(scorer, TextAwareScorer)``.
    """

    def with_text_items(
        self, texts: Sequence[str], refresh: Mapping[int, str] | None = None
    ) -> Scorer:
        """A new scorer with ``len(texts)`` more items, each placed by its text alone.

        The new items get indices ``n_items, n_items + 1, ...`` in ``texts``
        order; ``refresh`` (existing index -> text) recomputes those rows from
        a new text. Copy on write: ``self`` is never modified (requests in
        flight keep scoring with it); the copy may share unchanged tensors.
        """
        ...


# --------------------------------------------------------------------------- inner-product scorers


@runtime_checkable
class InnerProductScorer(Protocol):
    """Optional capability of a ``Scorer`` whose score is a dot product with an item table.

    ``score(state)[b, i] == queries(state)[b] . table[i] + c_b``, where ``c_b``
    is constant over items (I-AutoRec's user bias), so the ranking of one user
    is the ranking by inner product. An item bias is one more column of the
    table against a constant 1 in the query. Serving builds an approximate
    maximum-inner-product index over ``inner_product_table`` (``training.ann``)
    and re-scores its candidates exactly with ``score(state, items)``; a
    scorer without this capability is always scored exactly.
    """

    def inner_product_table(self) -> Tensor:
        """(I, D') item rows, the item bias (if any) as a last column."""
        ...

    def inner_product_rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of ``inner_product_table``, made without the whole table.

        Why: a table with a bias column is a new (I, D') tensor, 1 GB at a million
        items x 256; a pass over the rows (the boosts' covariance at start-up, the
        index build) takes them a chunk at a time so that it never holds a second
        copy of the model's item table.
        """
        ...

    def inner_product_queries(self, state: Tensor) -> Tensor:
        """(B, D) user state -> (B, D') query rows against ``inner_product_table``."""
        ...


# --------------------------------------------------------------------------- config


@dataclass
class ModelConfig:
    """Base of every model's typed config: paper defaults, a help text per field.

    Declare fields as ``name: type = field(default=..., metadata={"help": "..."})``.
    """

    seed: int = field(default=0, metadata={"help": "random seed for init, batching, sampling"})

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse values no training can use: ``ModelError`` saying which.

        Runs whenever a config is made (defaults, ``with_overrides``, a tuning
        trial), so a bad setting fails where it was given (a CLI flag, a
        ``POST /admin/retrain``) rather than minutes later in a worker's ``fit``.
        A Config with settings of its own extends it and calls ``super().check()``.
        Here: what holds for every model (a finite number in every float setting, a
        seed numpy's generators take, no integer setting above its largest value:
        ``training.models.limits``, so no job asks to train "forever").
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ModelError(f"{f.name} must be a finite number, got {value}")
            if (too_large := size_problem(f.name, value)) is not None:
                raise ModelError(too_large)
        if not 0 <= self.seed < 2**32:
            raise ModelError(f"seed must be in [0, 2^32), got {self.seed}")

    def with_overrides(self, overrides: Mapping[str, Any]) -> ModelConfig:
        """Copy with ``key=value`` overrides (strings parsed to the field's type)."""
        known = {f.name: f for f in dataclasses.fields(self)}
        hints = typing.get_type_hints(type(self))
        changes: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in known:
                raise ModelError(
                    f"unknown setting '{key}' for {type(self).__qualname__}; "
                    f"known: {', '.join(sorted(known))}"
                )
            changes[key] = _parse_value(raw, hints[key], key)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name -> help text, for ``genrec train --help`` and the docs."""
        return {
            f.name: f"{_declared_help(cls, f.name)} (default: {f.default!r})"
            for f in dataclasses.fields(cls)
        }


def _declared_help(cls: type, name: str) -> str:
    """Help of setting ``name`` from the nearest class that gave one.

    A model that only changes a shared setting's default (``lr: float = 2e-3``)
    keeps the help text its base declared (``training.models.common.settings``).
    """
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and declared.metadata.get("help"):
            return str(declared.metadata["help"])
    return ""


#: How a setting's type reads in an error ("as an integer", not "as <class 'int'>").
_KIND_NAMES: dict[Any, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "text",
}


def _parse_value(raw: Any, hint: Any, key: str) -> Any:
    if not isinstance(raw, str):
        return raw
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if raw.lower() in ("none", "null"):
            return None
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if hint in (int, float, str):
            return hint(raw)
        if origin in (tuple, list):
            inner = typing.get_args(hint)[0] if typing.get_args(hint) else str
            parts = [p for p in raw.replace(" ", "").split(",") if p]
            return origin(inner(p) for p in parts)
    except (TypeError, ValueError) as exc:
        kind = _KIND_NAMES.get(hint, getattr(hint, "__name__", str(hint)))
        raise ModelError(f"setting '{key}': cannot read {raw!r} as {kind}") from exc
    return raw


# --------------------------------------------------------------------------- training


@dataclass
class EpochReport:
    """What one training epoch reports to progress sinks (CLI bar, retrain job)."""

    epoch: int  # 1-based
    epochs: int
    losses: dict[str, float]
    metrics: dict[str, float]
    seconds: float
    is_best: bool


@dataclass
class FitReport:
    """Outcome of ``Model.fit``: the kept epoch and its validation metrics."""

    best_epoch: int
    epochs_run: int
    best_metrics: dict[str, float]
    seconds: float
    history: list[EpochReport] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs_run, 1)


@dataclass
class Validation:
    """Validation that drives early stopping and model selection.

    ``evaluate`` runs the project's evaluation code on a scorer (so validation
    measures what production computes); ``metric`` names the key to select on.
    ``evaluate_by_activity`` (None: not available, e.g. reduced across ranks)
    gives the same figures and, from the same pass, each activity segment's
    (``training.segments``): what a version records of its saved scorer.
    """

    evaluate: Callable[[Scorer], dict[str, float]]
    metric: str
    higher_is_better: bool = True
    evaluate_by_activity: Callable[[Scorer], tuple[dict[str, float], ByActivity]] | None = None


EpochCallback = Callable[[EpochReport], None]


class Model(ABC):
    """A trainable model: typed config, ``fit``, and its serving form ``to_scorer``."""

    name: ClassVar[str]
    task: ClassVar[Task]
    Config: ClassVar[type[ModelConfig]]
    scorer_cls: ClassVar[type[Scorer]]
    #: What ``genrec tune`` may change, declared in the model's file next to its Config.
    search_space: ClassVar[SearchSpace]
    #: Trains on several processes (``genrec train --nproc N``, ``training.distributed``):
    #: gradient steps on shards of its rows. Closed-form and sampling-based fits do not.
    trains_distributed: ClassVar[bool] = False
    #: Fits in one step (a closed form, a count): no epoch to choose, so nothing is lost
    #: by fitting it on all the data without a held-out slice (``training.tuning.refit``).
    closed_form: ClassVar[bool] = False
    #: Learns from the differences between observed rating values alone (a rating
    #: model with no reading of implicit data): where every rating is the same, such as
    #: a log without ratings whose events all read 1.0, it fits a constant. ``genrec
    #: tune`` leaves it out of such a search (``training.tuning.candidates.screen``).
    #: AutoRec, which reads implicit data as every entry a target, does not.
    fits_rating_values: ClassVar[bool] = False

    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @property
    def changes_after_validation(self) -> bool:
        """Whether ``to_scorer`` changes the model after its last validated epoch (i-cf-nade
        re-fits every user's rows to the final item codes): the kept epoch's figure then
        describes a model nobody serves, so a tuning trial measures the scorer once more
        (``training.tuning.objective.validated_fit``) rather than rank settings by it."""
        return False

    @abstractmethod
    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        """Train on ``train``; select the epoch by ``validation`` where iterative."""

    @abstractmethod
    def to_scorer(self) -> Scorer:
        """The serving form; its tensors are what the artifact stores."""

    def check_data(self, train: Interactions) -> None:
        """Raise ``UnsuitableData`` when this model cannot learn from ``train`` whatever
        its searched settings (all ratings equal, no positive, ...); nothing otherwise.

        Cheap (no fitting): ``genrec tune`` runs it for every candidate on the
        tuning split before the search starts and leaves a refused model out
        (``training.tuning.candidates.screen``). ``fit`` refuses the same data
        through the same helpers (the contract test fits every model on odd
        data and compares). It may read settings the search space leaves alone
        (a positive threshold), never one the search samples: a failure that
        depends on those belongs to the trial, not to the data.
        """
        return None  # the default: any data the readers accept (popularity, EASE)

    def replay_lengths(self, best_epoch: int) -> dict[str, int] | None:
        """The length settings that train, without validation, as far as the fit just
        run kept (``best_epoch``): ``{"epochs": best_epoch}`` for an epoch loop.

        ``genrec tune`` refits its winner on all the data with these
        (``training.tuning.refit``), which has no held-out users left to stop on.
        None: no setting replays the kept state, so a held-out slice must choose.
        A model whose fit has several phases (IRGAN) overrides this.
        """
        fields = {f.name for f in dataclasses.fields(self.Config)}
        return {"epochs": best_epoch} if "epochs" in fields and best_epoch > 0 else None

    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B,) training users + their histories -> (B, I) scores from the trained model itself.

        The model's own full computation (its forward pass, its per-user
        parameters), written independently of the Scorer's state/score split.
        The contract test checks that ``score(user_state(users, history))``
        ranks items exactly as this does, so the serving split cannot drift
        from what was trained. Any monotone transform of the scores is fine.
        """
        raise NotImplementedError(
            f"model '{self.name}' must implement reference_scores(users, history) -> (B, I) "
            "so the contract test can compare the serving path with the trained model"
        )

    def base_scorer_config(self, train: Interactions) -> dict[str, Any]:
        """Config every scorer carries: sizes, rating range, hyper-parameters."""
        return {
            **self.config.to_dict(),
            "model": self.name,
            "n_users": train.n_users,
            "n_items": train.n_items,
            "rating_range": list(train.rating_range) if train.explicit else [0.0, 1.0],
        }


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch and return a numpy generator: one seed makes a run repeatable."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
