"""Logging interactions (durable before the 2xx)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response, status

from app.api.deps import ServicesDep
from app.api.responses import BODY, errors, json_bytes
from app.schemas import InteractionBatch, InteractionsAccepted, InteractionsBody

router = APIRouter(prefix="/v1", tags=["interactions"])


@router.post(
    "/interactions",
    response_model=InteractionsAccepted,
    status_code=status.HTTP_201_CREATED,
    responses=errors(*BODY, 413, 503),
)
async def log_interactions(
    body: Annotated[InteractionsBody, Body()], services: ServicesDep
) -> Response:
    """One interaction or ``{"interactions": [...]}``; committed in one transaction before 201
    (shared with concurrent requests: group commit, ``app.serving.group_commit``)."""
    items = body.interactions if isinstance(body, InteractionBatch) else [body]
    accepted = InteractionsAccepted(accepted=await services.interactions.record_async(items))
    return json_bytes(accepted, status.HTTP_201_CREATED, exclude_none=False)
