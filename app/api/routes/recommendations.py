"""Top-k recommendations for a user id or for an ad-hoc history.

Coroutines: the recommender keeps blocking work in the thread pool and joins
the model's micro-batch for scoring (``app.serving.batcher``).

``GET /v1/users/{user_id}/recommendations`` is the route under the heaviest
load, so it skips two pieces of FastAPI per-request machinery that showed
high in its profile (see ``app.api.query``): its query string is parsed by
one pydantic model (``app.api.query``). The ad-hoc route reads its body
itself likewise (``app.api.body``). Both answers are serialised once by
pydantic-core and returned as bytes (``app.api.responses.json_bytes``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.body import openapi_body, parse_body
from app.api.deps import services_of
from app.api.params import UserIdPath
from app.api.query import openapi_parameters, parse_query
from app.api.responses import BODY, SERVING, errors, json_bytes
from app.schemas import AdHocRecommendationRequest, RecommendationQuery, RecommendationResponse
from app.serving.recommend import Filters, query_rules

router = APIRouter(prefix="/v1", tags=["recommendations"])


@router.get(
    "/users/{user_id:id}/recommendations",
    response_model=RecommendationResponse,
    response_model_exclude_none=True,
    responses=errors(*SERVING),
    openapi_extra=openapi_parameters(RecommendationQuery),
)
async def recommend_for_user(user_id: UserIdPath, request: Request) -> Response:
    """Top-k for a user; fold-in from logged interactions, popularity fallback when unknown."""
    query = parse_query(RecommendationQuery, request.query_params)
    filters = Filters(
        exclude_seen=query.exclude_seen,
        exclude=query.exclude or (),
        include=query.include,
        exclude_recently_shown=query.exclude_recently_shown,
        rules=query_rules(query.filter, query.boost, query.cap, query.mmr),
    )
    answer = await services_of(request).recommender.for_user(user_id, query.k, query.model, filters)
    return json_bytes(answer)


@router.post(
    "/recommendations",
    response_model=RecommendationResponse,
    response_model_exclude_none=True,
    responses=errors(*BODY, 413, *SERVING),
    openapi_extra=openapi_body(AdHocRecommendationRequest),
)
async def recommend_for_history(request: Request) -> Response:
    """Top-k for an anonymous history; unknown history items are listed in ``unknown_items``."""
    body: AdHocRecommendationRequest = await parse_body(AdHocRecommendationRequest, request)
    return json_bytes(await services_of(request).recommender.for_history(body))
