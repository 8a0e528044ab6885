"""Item-to-item similarity."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import services_of
from app.api.params import ItemIdPath
from app.api.query import openapi_parameters, parse_query
from app.api.responses import SERVING, errors, json_bytes
from app.schemas import SimilarItemsQuery, SimilarItemsResponse
from app.serving.recommend import query_rules

router = APIRouter(prefix="/v1", tags=["items"])


@router.get(
    "/items/{item_id:id}/similar",
    response_model=SimilarItemsResponse,
    response_model_exclude_none=True,
    responses=errors(*SERVING),
    openapi_extra=openapi_parameters(SimilarItemsQuery),
)
async def similar_items(item_id: ItemIdPath, request: Request) -> Response:
    """Most similar items by cosine over the model's item vectors (else co-occurrence),
    under the same business rules as every list (docs/rules.md)."""
    query = parse_query(SimilarItemsQuery, request.query_params)
    rules = query_rules(query.filter, query.boost, query.cap, query.mmr)
    answer = await services_of(request).recommender.similar(item_id, query.k, query.model, rules)
    return json_bytes(answer)
