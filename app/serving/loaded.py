"""``LoadedModel``: one verified model version, ready to answer requests.

Built once off the request path from a store ``LoadedVersion`` and never
mutated afterwards, so a request that grabbed it keeps a consistent view even
while the holder swaps in a newer version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from app.core.text import encodable
from app.serving.cosine import CosineScorer
from models_store import LoadedVersion, Manifest, history_matrix
from training.models import stored_scorer
from training.models.base import History, Scorer

if TYPE_CHECKING:
    from app.serving.retrieval import AnnRetrieval
    from app.serving.similarity import SimilarIndex

log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """A stored version cannot be served (bad scorer config, shape mismatch, non-finite scores)."""


@dataclass(frozen=True)
class LoadedModel:
    """Scorer + id maps + training history of one version, on one device."""

    name: str
    version: str
    manifest: Manifest
    scorer: Scorer
    user_index: dict[str, int]
    item_index: dict[str, int]
    item_ids: list[str]
    history: sp.csr_matrix  # (U, I) training rows: fold-in and seen-item exclusion
    popularity: np.ndarray  # (I,) distinct training users per item (fallback ranking)
    titles: list[str | None]  # (I,) from extra items.json when present
    cutoff: datetime | None  # newest training event; later log rows are folded in
    # Mean of the stored training values (the history): the documented rating baseline
    # for a prediction the model cannot make (an unknown item, a user with no ratings).
    training_mean: float
    # Item rows that ``app.catalog`` appended (or refreshed) from catalog text, by
    # index -> the catalog stamp of that text; and how many such extensions built
    # this object (0 = the artifact as stored). Responses flag these items ``from_text``.
    from_text: Mapping[int, str] = field(default_factory=dict)
    extension: int = 0
    # The version's approximate-retrieval index file (verified by the store), and the
    # opened index when the server's GENREC_ANN policy uses it (``app.serving.retrieval``).
    index_path: str | None = None
    ann: AnnRetrieval | None = None
    # The similar-items index (cosine over the item vectors), likewise: its file, and
    # the opened index answering ``/items/{id}/similar`` (``app.serving.similarity``).
    similar_index_path: str | None = None
    similar_ann: SimilarIndex | None = None
    _similarity: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def revision(self) -> str:
        """The version, plus ``+cN`` once the catalog extended it N times (masks' cache key)."""
        return self.version if not self.extension else f"{self.version}+c{self.extension}"

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def device(self) -> torch.device:
        return self.scorer.device

    @property
    def predicts_ratings(self) -> bool:
        return bool(self.scorer.predicts_ratings)

    @property
    def rating_range(self) -> tuple[float, float]:
        return self.scorer.rating_range

    def training_row(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, values) of training user ``user``."""
        start, end = self.history.indptr[user], self.history.indptr[user + 1]
        return self.history.indices[start:end], self.history.data[start:end]

    def similar_scores(self, item: int) -> Tensor:
        """(I,) cosine similarity of every item to ``item`` (itself included)."""
        return self.similar_rows([item])[0]

    def similar_rows(self, items: Sequence[int]) -> Tensor:
        """(B, I) cosine similarity of every item to each of ``items``: one product for
        a micro-batch's similar lists.

        Uses the scorer's item vectors when it has them (``CosineScorer``: no
        unit-length copy of the table), else the item columns of the training
        matrix (co-occurrence cosine). Built lazily, once.
        """
        index = self._similarity_source()
        if isinstance(index, CosineScorer):
            rows: Tensor = index.score(index.queries(items))
            return rows
        columns, norms = index
        picked = np.asarray(items, dtype=np.int64)
        dots = (columns[picked] @ columns.T).toarray()  # (B, U) x (U, I)
        cosines = dots / (norms[picked][:, None] * norms[None, :])
        return torch.as_tensor(cosines, dtype=torch.float32)

    def _similarity_source(self) -> CosineScorer | tuple[sp.csr_matrix, np.ndarray]:
        """``_similarity_index``, built on first use and kept."""
        index = self._similarity.get("index")
        if index is None:
            index = self._similarity.setdefault("index", _similarity_index(self))
        return index  # type: ignore[no-any-return]

    def pool_similarity(self, pool: np.ndarray) -> PoolSimilarity:
        """Cosines among ``pool``'s items, for a greedy re-rank that asks for one row a
        step (MMR, ``app.rules.diversity``): the pool's unit vectors (or co-occurrence
        columns) are gathered once, and a pool of up to ``FULL_POOL`` items gets all its
        cosines in one product. Asking for one item's cosines to the pool a step at a
        time gathered the pool again every step: an MMR list of 100 on EASE (1,682-wide vectors) took
        about 11 s of the scoring thread (``benchmarks/mmr_cost.py``)."""
        index = self._similarity_source()
        if isinstance(index, CosineScorer):
            unit = index.queries(pool.tolist()).float()  # (P, d), gathered once
            return PoolSimilarity(unit, full=pool.size <= FULL_POOL)
        columns, norms = index
        scaled = sp.csr_matrix(sp.diags(1.0 / norms[pool]) @ columns[pool])  # (P, U) unit rows
        return PoolSimilarity(scaled, full=pool.size <= FULL_POOL)


#: Pools up to this size get every cosine among them in one product (64 MiB at most).
FULL_POOL = 4096


class PoolSimilarity:
    """Cosines of a pool's items with each other, a row at a time (``row(j)``).

    ``unit`` holds the pool's items at unit length: a dense (P, d) tensor (item
    vectors) or a sparse (P, U) matrix (co-occurrence columns). With ``full``
    the (P, P) cosines are computed at once, else one (P,) product per row.
    """

    def __init__(self, unit: Tensor | sp.csr_matrix, full: bool) -> None:
        self.unit = unit
        self.all: np.ndarray | None = self._product(None) if full else None

    def _product(self, j: int | None) -> np.ndarray:
        if isinstance(self.unit, Tensor):
            other = self.unit if j is None else self.unit[j : j + 1]
            dense: np.ndarray = (self.unit @ other.T).cpu().numpy()
            return dense
        other_rows = self.unit if j is None else self.unit[j]
        product: np.ndarray = (self.unit @ other_rows.T).toarray().astype(np.float32)
        return product

    def row(self, j: int) -> np.ndarray:
        """(P,) cosine of pool position ``j``'s item with each pool item."""
        if self.all is not None:
            one: np.ndarray = self.all[j]
            return one
        return self._product(j).ravel()


def _similarity_index(model: LoadedModel) -> CosineScorer | tuple[sp.csr_matrix, np.ndarray]:
    """Cosine over the item vectors on the model's device, or (I, U) CSR columns + norms.

    The cosine scorer opened with the similar-items index (and put in the similarity
    view, ``app.serving.similarity``) is the same one, over the same vectors: reused.
    """
    similar = model.similar_ann
    if similar is not None and similar.source is model.scorer:
        return similar.scorer
    if isinstance(model.scorer, CosineScorer):  # the similarity view itself
        return model.scorer
    vectors = model.scorer.item_vectors()
    if vectors is not None:
        return CosineScorer(vectors)
    columns = sp.csr_matrix(model.history.T)
    norms = np.sqrt(np.asarray(columns.multiply(columns).sum(axis=1)).ravel())
    return columns, np.maximum(norms, 1e-12)


def build_loaded_model(loaded: LoadedVersion, device: torch.device) -> LoadedModel:
    """Turn a verified store version into a servable model, or raise ``ModelLoadError``.

    Any failure is a ``ModelLoadError``: checksums prove the files are the ones saved,
    not that they fit together (a tensor of the wrong shape or dtype, a scorer config
    another build wrote). Such a version raised from the smoke test's product, which
    the holder did not take for a refusal: a server restarted on it failed to start,
    and a running one logged a traceback on every reload poll.
    """
    try:
        return _build(loaded, device)
    except ModelLoadError:
        raise
    except Exception as exc:
        manifest = loaded.manifest
        raise ModelLoadError(
            f"{manifest.model} version {manifest.version}: cannot serve it "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _build(loaded: LoadedVersion, device: torch.device) -> LoadedModel:
    manifest, contents = loaded.manifest, loaded.contents
    try:
        scorer = stored_scorer(manifest.model, manifest.scorer_config, contents.tensors).to(device)
    except Exception as exc:  # any model-side failure means "cannot serve this version"
        raise ModelLoadError(
            f"{manifest.model} version {manifest.version}: cannot build the scorer: {exc}"
        ) from exc
    n_items = len(contents.item_ids)
    if scorer.n_items != n_items:
        raise ModelLoadError(
            f"{manifest.model} version {manifest.version}: scorer has {scorer.n_items} items "
            f"but the artifact lists {n_items} item ids"
        )
    history = history_matrix(contents.history, n_items)  # its rows checked at load (check_history)
    model = LoadedModel(
        name=manifest.model,
        version=manifest.version,
        manifest=manifest,
        scorer=scorer,
        user_index={u: i for i, u in enumerate(contents.user_ids)},
        item_index={it: i for i, it in enumerate(contents.item_ids)},
        item_ids=list(contents.item_ids),
        history=history,
        popularity=np.bincount(history.indices, minlength=n_items).astype(np.float32),
        titles=_titles(contents.extra.get("items.json"), contents.item_ids),
        cutoff=datetime.fromisoformat(manifest.data.cutoff) if manifest.data.cutoff else None,
        training_mean=_training_mean(history, scorer.rating_range),
        index_path=loaded.mapped.get(manifest.retrieval.get("file", "")),
        similar_index_path=loaded.mapped.get(
            (manifest.retrieval.get("similar") or {}).get("file", "")
        ),
    )
    _smoke_test(model)
    return model


def _training_mean(history: sp.csr_matrix, rating_range: tuple[float, float]) -> float:
    """Mean stored training value; the middle of the rating range for an empty history.

    Computed from the history rather than read from the scorer config because only
    some scorers record a global mean, and every version stores its history.
    """
    if not history.nnz:
        return (rating_range[0] + rating_range[1]) / 2
    return float(np.mean(history.data, dtype=np.float64))


def _titles(raw: bytes | None, item_ids: list[str]) -> list[str | None]:
    if raw is None:
        return [None] * len(item_ids)
    try:
        meta = json.loads(raw)
    except ValueError:
        log.warning("items.json is not valid JSON; serving without titles")
        return [None] * len(item_ids)
    titles: list[str | None] = []
    for item in item_ids:
        entry = meta.get(item) if isinstance(meta, dict) else None
        title = entry.get("title") if isinstance(entry, dict) else None
        # A title with a lone surrogate (a JSON escape) is served with U+FFFD instead.
        titles.append(encodable(str(title)) if title is not None else None)
    return titles


def _smoke_test(model: LoadedModel) -> None:
    """Score one folded-in user before serving: a broken version fails here, not in a request.

    NaN or infinite weights never get here: the store refuses them when it loads the
    version (``models_store.non_finite``), for promote and ``genrec evaluate`` alike.
    This catches what finite weights can still do (scores that overflow, a scorer
    that divides by zero).
    """
    history = History.from_lists([[0]], None, model.n_items, device=model.device)
    with torch.inference_mode():
        state = model.scorer.user_state(torch.tensor([-1], device=model.device), history)
        scores = model.scorer.score(state)
    if scores.shape != (1, model.n_items) or not bool(torch.isfinite(scores).all()):
        raise ModelLoadError(
            f"{model.name} version {model.version}: smoke test failed "
            f"(scores shape {tuple(scores.shape)}, all finite: {bool(torch.isfinite(scores).all())})"
        )
