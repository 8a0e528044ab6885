"""Predicted ratings (rating models only)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.body import openapi_body, parse_body
from app.api.deps import services_of
from app.api.responses import BODY, SERVING, errors, json_bytes
from app.schemas import PredictionRequest, PredictionResponse

router = APIRouter(prefix="/v1", tags=["predictions"])


@router.post(
    "/predictions",
    response_model=PredictionResponse,
    response_model_exclude_none=True,
    responses=errors(*BODY, 413, *SERVING),
    openapi_extra=openapi_body(PredictionRequest),
)
async def predict(request: Request) -> Response:
    """Ratings for ``item_ids`` in request order; 422 for top-k-only models.

    A rating the model cannot make (an unknown item, a user with no ratings) is the
    baseline, flagged ``fallback``: the user's mean rating, else the version's
    training mean. Unknown item ids are listed in ``unknown_items``.
    """
    body: PredictionRequest = await parse_body(PredictionRequest, request)  # app.api.body: why
    answer = await services_of(request).recommender.predict(body.user_id, body.item_ids, body.model)
    return json_bytes(answer)  # bytes out: FastAPI does not validate the answer again
