"""What a user would be served, and where a new item's text would land, without side effects.

The Explore page must show exactly what the API would answer, so it ranks
with the serving code itself (``Recommender``: the same fold-in, cache, seen
filter and micro-batching). It uses its own ``Recommender`` whose impression
recorder is switched off: an operator looking at a user is not that user
being shown a list, and counting it would skew impressions, attribution and
experiments.

A new item's text is placed the way ``PUT /v1/items/{id}`` places it
(``app.catalog.extension.extend_model``: ConvMF's item vector from its text),
on a private copy of the served model, and never saved: the page shows the
catalog items nearest to it, as ``GET /v1/items/{id}/similar`` would once the
item is added.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from starlette.concurrency import run_in_threadpool

from app.api.deps import Services
from app.catalog.extension import TextItem, extend_model, is_text_aware
from app.core.errors import ApiError
from app.schemas import RecommendationResponse, ScoredItem
from app.serving.batcher import rank_similar_exactly
from app.serving.impressions import ImpressionRecorder
from app.serving.loaded import LoadedModel
from app.serving.recommend import Filters, Recommender, scored_items
from app.serving.removed import RemovedItems, RemovedMask
from app.serving.state import user_context
from app.serving.titles import CatalogTitles

PREVIEW_ITEM_ID = "__dashboard_preview__"


class Previewer:
    """Rankings for the Explore page (no impressions recorded); close it on shutdown."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.recommender = Recommender(
            services.holder,
            services.cache,
            services.recommender.logs,
            services.settings,
            services.metrics,
            ImpressionRecorder(services.sessions, services.metrics, enabled=False),
            removed=services.recommender.removed,  # removed items are in no list
            titles=services.recommender.titles,  # named as the API names them
        )

    async def close(self) -> None:
        await self.recommender.close()

    def served_models(self) -> list[str]:
        """Models this server can serve (a production version in the store)."""
        return self.services.holder.available()

    async def recommend(self, user_id: str, model: str, k: int) -> RecommendationResponse:
        return await self.recommender.for_user(user_id, k, model, Filters())

    async def history(self, user_id: str, model: str) -> list[tuple[str, str | None]]:
        """The items ``model`` counts as the user's history (training row ∪ log), with titles."""
        loaded = await self.recommender.model_async(model)
        context = await run_in_threadpool(
            user_context,
            loaded,
            user_id,
            self.services.recommender.logs,
            self.services.cache,
        )
        title = self.recommender.titles.get  # the catalog's title wins, as in every list
        ids, names = loaded.item_ids, loaded.titles
        return [(ids[i], title(ids[i], names[i])) for i in np.asarray(context.seen).tolist()]

    async def logged_events(self, user_id: str) -> int | None:
        """How many events the interaction log holds for the user, on any item (None when
        the log cannot be read): why a user has no history under a model is worth saying,
        a new user and one whose events are all on items the model does not know differ."""
        rows = await run_in_threadpool(self.services.recommender.logs.read, user_id, None)
        return None if rows is None else len(rows)

    async def text_models(self) -> list[str]:
        """Served models that can place an item from its text (ConvMF); loads them if needed."""
        found = []
        for name in self.served_models():
            try:
                loaded = await self.recommender.model_async(name)
            except ApiError:
                continue  # refused or unloadable: the lists beside say why
            if is_text_aware(loaded.scorer):
                found.append(name)
        return found


@dataclass(frozen=True)
class Placement:
    model: str
    version: str
    neighbours: list[ScoredItem]


def place_text(
    model: LoadedModel,
    title: str | None,
    text: str,
    k: int,
    removed: RemovedItems | None = None,
    titles: CatalogTitles | None = None,
) -> Placement:
    """The ``k`` items nearest to a new item with ``text`` under ``model`` (nothing saved),
    items removed from the catalog (``removed``) left out and named by the catalog's
    ``titles`` as in every list."""
    if not is_text_aware(model.scorer):
        raise ApiError(
            422, "not_text_aware", f"model '{model.name}' cannot place an item from its text"
        )
    stamp = datetime.now(UTC).isoformat()
    grown = extend_model(model, [TextItem(PREVIEW_ITEM_ID, title, text, stamp)])
    index = grown.item_index[PREVIEW_ITEM_ID]
    # The served model's mask, one item wider: the private copy must not enter the cache
    # (its revision is the one the next real catalog extension will have).
    served = removed.mask(model) if removed is not None else None
    mask = RemovedMask.of(served.indices.copy(), grown.n_items) if served is not None else None
    ranked = rank_similar_exactly(grown, index, k, removed=mask)
    neighbours = [ScoredItem(**fields) for fields in scored_items(grown, ranked, titles)]
    return Placement(grown.name, grown.version, neighbours)
