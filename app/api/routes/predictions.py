"""Predicted ratings (rating models only)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ServicesDep
from app.api.responses import BODY, SERVING, errors
from app.schemas import PredictionRequest, PredictionResponse

router = APIRouter(prefix="/v1", tags=["predictions"])


@router.post("/predictions", response_model=PredictionResponse, responses=errors(*BODY, *SERVING))
def predict(body: PredictionRequest, services: ServicesDep) -> PredictionResponse:
    """Ratings for ``item_ids``; 422 for top-k-only models or unknown items, 404 for a user
    with nothing known (not in the artifact, nothing logged)."""
    return services.recommender.predict(body.user_id, body.item_ids, body.model)
