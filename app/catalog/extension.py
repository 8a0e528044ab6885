"""Growing one loaded model with catalog items scored from their text (copy on write).

The scorer places the items (``TextAwareScorer.with_text_items``: ConvMF's
v_j = cnn(W, X_j)); this module grows everything else that is indexed by item
together with it: item id map, titles, popularity, the training history's
width. The result is a new ``LoadedModel``; requests holding the old object
finish on it. Indices are append-only, so an item keeps its index in later
extensions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from app.catalog.items import CatalogError
from app.repository import ItemRow
from app.serving.loaded import LoadedModel
from training.models.base import Scorer, TextAwareScorer


@dataclass(frozen=True)
class TextItem:
    """A catalog item with (or formerly with) text; ``stamp`` identifies its revision."""

    item_id: str
    title: str | None
    text: str | None
    stamp: str  # updated_at, ISO

    @classmethod
    def from_row(cls, row: ItemRow) -> TextItem:
        return cls(row.item_id, row.title, row.text, row.updated_at.isoformat())


def is_text_aware(scorer: Scorer) -> bool:
    """True when the scorer can place a new item from its text (ConvMF)."""
    return isinstance(scorer, TextAwareScorer)


def extend_model(model: LoadedModel, items: Iterable[TextItem]) -> LoadedModel:
    """``model`` with ``items`` scored from text: new ones appended, changed ones refreshed.

    Returns ``model`` itself when it is not text-aware or nothing changes;
    otherwise a new object (the old one is left untouched for in-flight requests).
    """
    scorer = model.scorer
    if not isinstance(scorer, TextAwareScorer):
        return model
    added: list[TextItem] = []
    refreshed: list[tuple[int, TextItem]] = []
    for item in items:
        index = model.item_index.get(item.item_id)
        if index is None:
            if item.text:
                added.append(item)
        elif index in model.from_text and model.from_text[index] != item.stamp:
            refreshed.append((index, item))
    if not added and not refreshed:
        return model
    grown = scorer.with_text_items(
        [it.text or "" for it in added], {index: it.text or "" for index, it in refreshed}
    )
    if grown.n_items != model.n_items + len(added):
        raise CatalogError(
            f"model '{model.name}': with_text_items gave {grown.n_items} items for "
            f"{model.n_items} + {len(added)}"
        )
    return _grown(model, grown, added, refreshed)


def _grown(
    model: LoadedModel,
    scorer: Scorer,
    added: list[TextItem],
    refreshed: list[tuple[int, TextItem]],
) -> LoadedModel:
    """The copy-on-write extension: every item-indexed structure grows by ``len(added)``."""
    n_items = model.n_items + len(added)
    item_ids = model.item_ids + [it.item_id for it in added]
    titles = list(model.titles) + [it.title for it in added]
    from_text = dict(model.from_text)
    for index, item in [(model.n_items + n, it) for n, it in enumerate(added)] + refreshed:
        from_text[index] = item.stamp
        titles[index] = item.title
    history = model.history
    return dataclasses.replace(
        model,
        scorer=scorer,
        item_index={item: i for i, item in enumerate(item_ids)},
        item_ids=item_ids,
        # New items have no training interactions: empty columns, zero popularity.
        history=sp.csr_matrix(
            (history.data, history.indices, history.indptr), shape=(history.shape[0], n_items)
        ),
        popularity=np.concatenate([model.popularity, np.zeros(len(added), np.float32)]),
        titles=titles,
        from_text=from_text,
        extension=model.extension + 1,
        _similarity={},  # similarity index is over the old table; rebuilt lazily
    )
