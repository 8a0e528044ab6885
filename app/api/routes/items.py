"""Item-to-item similarity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ServicesDep
from app.api.params import ItemIdPath, ModelQuery
from app.api.responses import SERVING, errors
from app.schemas import SimilarItemsResponse

router = APIRouter(prefix="/v1", tags=["items"])


@router.get(
    "/items/{item_id}/similar",
    response_model=SimilarItemsResponse,
    response_model_exclude_none=True,
    responses=errors(*SERVING),
)
def similar_items(
    item_id: ItemIdPath,
    services: ServicesDep,
    k: Annotated[int, Query(description="number of items (1..max_k)")] = 10,
    model: ModelQuery = None,
) -> SimilarItemsResponse:
    """Most similar items by cosine over the model's item vectors (else co-occurrence)."""
    return services.recommender.similar(item_id, k, model)
