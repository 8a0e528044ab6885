"""Top-k recommendations for a user id or for an ad-hoc history.

Coroutines: the recommender keeps blocking work in the thread pool and joins
the model's micro-batch for scoring (``app.serving.batcher``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ServicesDep
from app.schemas import AdHocRecommendationRequest, RecommendationResponse
from app.serving.recommend import Filters

router = APIRouter(prefix="/v1", tags=["recommendations"])


@router.get(
    "/users/{user_id}/recommendations",
    response_model=RecommendationResponse,
    response_model_exclude_none=True,
)
async def recommend_for_user(
    user_id: str,
    services: ServicesDep,
    k: Annotated[int, Query(description="number of items (1..max_k)")] = 10,
    model: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="model name; default model if omitted"),
    ] = None,
    exclude_seen: Annotated[bool, Query(description="drop items the user already has")] = True,
    exclude: Annotated[list[str] | None, Query(description="item ids never to return")] = None,
    include: Annotated[list[str] | None, Query(description="rank only these item ids")] = None,
) -> RecommendationResponse:
    """Top-k for a user; fold-in from logged interactions, popularity fallback when unknown."""
    filters = Filters(exclude_seen=exclude_seen, exclude=exclude or (), include=include)
    return await services.recommender.for_user(user_id, k, model, filters)


@router.post(
    "/recommendations", response_model=RecommendationResponse, response_model_exclude_none=True
)
async def recommend_for_history(
    body: AdHocRecommendationRequest, services: ServicesDep
) -> RecommendationResponse:
    """Top-k for an anonymous history; unknown history items are listed in ``unknown_items``."""
    return await services.recommender.for_history(body)
