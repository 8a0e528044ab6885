"""Similar items from the version's similar-items index, ranked like a user's list.

Why: an item's similar list is the cosine of its vector with every item's vector,
a product over the whole item table per request; at a million items that is
~130 ms a list and, the first time, a 1 GB unit-length copy of the table
(docs/performance.md, "Similar items on an indexed catalog"). A version built with
``training.ann`` also holds a similar-items index: the item vectors at unit
length, where inner product is cosine. With it, a similar list is a ranking like
a user's: the query is the item's unit vector, ``CosineScorer`` scores candidates
by cosine, and the version's ``AnnRetrieval`` over that index proposes the
candidates, re-scores them exactly, applies the list's business rules (filters
searched within, boosts group by group, diversity) and falls back to the exact
product when it must, counting why (``genrec_ann_fallback``), as it does for
recommendations. The scores returned are exact cosines; only which items are
looked at is approximate.

``similarity_view`` is that ranking's model: the version with ``CosineScorer`` in
place of its scorer and the similar-items index in place of the retrieval index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from app.serving.cosine import CosineScorer
from app.serving.loaded import LoadedModel
from training.models.base import Scorer

if TYPE_CHECKING:
    from app.serving.retrieval import AnnRetrieval


@dataclass(frozen=True)
class SimilarIndex:
    """A version's opened similar-items index, the cosine scorer opened with it, and the
    model scorer whose item vectors that cosine scorer holds."""

    retrieval: AnnRetrieval
    scorer: CosineScorer
    source: Scorer


def similarity_view(model: LoadedModel) -> LoadedModel | None:
    """The model that ranks ``model``'s similar lists from its similar-items index, or
    None when the server does not use one for it (``GENREC_ANN``, no index, no item
    vectors): the caller then ranks by the exact cosine row.

    Built once per model object. A catalog extension (a new object whose scorer has
    rows added or refreshed from text) gets a cosine scorer over its own vectors;
    those rows are not (correctly) in the index and join every list's candidates
    (``retrieval._unindexed``).
    """
    similar = model.similar_ann
    if similar is None:
        return None
    cache: dict[str, object] = model._similarity
    view = cache.get("view")
    if isinstance(view, LoadedModel):
        return view
    scorer = similar.scorer
    if similar.source is not model.scorer:
        vectors = model.scorer.item_vectors()
        if vectors is None:  # cannot happen: the index was built from them
            return None
        scorer = CosineScorer(vectors)
    view = dataclasses.replace(
        model, scorer=scorer, ann=similar.retrieval, similar_ann=None, _similarity=cache
    )
    return cache.setdefault("view", view)  # type: ignore[return-value]


def open_similar(model: LoadedModel, retrieval: AnnRetrieval) -> SimilarIndex | None:
    """``SimilarIndex`` of ``model`` over its opened similar-items index, the boosts'
    covariance computed now (at load, not in a request); None without item vectors."""
    vectors = model.scorer.item_vectors()
    if vectors is None:
        return None
    scorer = CosineScorer(vectors)
    retrieval.spread.covariance_of(scorer)
    return SimilarIndex(retrieval, scorer, model.scorer)


def similar_queries(view: LoadedModel, items: Sequence[int]) -> Tensor:
    """(B, d) the states ``items``' similar lists are ranked for in ``view``."""
    scorer = view.scorer
    assert isinstance(scorer, CosineScorer)  # similarity_view put it there
    with torch.inference_mode():
        return scorer.queries(items)
