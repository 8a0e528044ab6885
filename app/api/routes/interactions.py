"""Logging interactions (durable before the 2xx)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.body import openapi_body, parse_body
from app.api.deps import services_of
from app.api.responses import BODY, errors, json_bytes
from app.schemas import InteractionBatch, InteractionsAccepted, InteractionsBody

router = APIRouter(prefix="/v1", tags=["interactions"])


@router.post(
    "/interactions",
    response_model=InteractionsAccepted,
    status_code=status.HTTP_201_CREATED,
    responses=errors(*BODY, 413, 503),
    openapi_extra=openapi_body(InteractionsBody),
)
async def log_interactions(request: Request) -> Response:
    """One interaction or ``{"interactions": [...]}``; committed all or none before 201
    (in one write shared with concurrent requests: group commit, ``app.serving.group_commit``)."""
    body = await parse_body(InteractionsBody, request)  # app.api.body says why not a parameter
    items = body.interactions if isinstance(body, InteractionBatch) else [body]
    recorded = await services_of(request).interactions.record_async(items)
    accepted = InteractionsAccepted(accepted=recorded)
    return json_bytes(accepted, status.HTTP_201_CREATED, exclude_none=False)
