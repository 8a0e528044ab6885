"""Item-to-item similarity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ServicesDep
from app.api.params import ItemIdPath, ModelQuery
from app.api.responses import SERVING, errors
from app.rules.request import BOOST_DOC, CAP_DOC, FILTER_DOC, MMR_DOC
from app.schemas import SimilarItemsResponse
from app.schemas_fields import RuleText
from app.serving.recommend import query_rules

router = APIRouter(prefix="/v1", tags=["items"])


@router.get(
    "/items/{item_id:path}/similar",
    response_model=SimilarItemsResponse,
    response_model_exclude_none=True,
    responses=errors(*SERVING),
)
async def similar_items(
    item_id: ItemIdPath,
    services: ServicesDep,
    k: Annotated[int, Query(description="number of items (1..max_k)")] = 10,
    model: ModelQuery = None,
    filter: Annotated[list[RuleText] | None, Query(description=FILTER_DOC)] = None,
    boost: Annotated[list[RuleText] | None, Query(description=BOOST_DOC)] = None,
    cap: Annotated[RuleText | None, Query(description=CAP_DOC)] = None,
    mmr: Annotated[float | None, Query(description=MMR_DOC)] = None,
) -> SimilarItemsResponse:
    """Most similar items by cosine over the model's item vectors (else co-occurrence),
    under the same business rules as every list (docs/rules.md)."""
    rules = query_rules(filter, boost, cap, mmr)
    return await services.recommender.similar(item_id, k, model, rules)
