"""Logging interactions (durable before the 2xx)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, status

from app.api.deps import ServicesDep
from app.api.responses import BODY, errors
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
) -> InteractionsAccepted:
    """One interaction or ``{"interactions": [...]}``; committed in one transaction before 201
    (shared with concurrent requests: group commit, ``app.serving.group_commit``)."""
    items = body.interactions if isinstance(body, InteractionBatch) else [body]
    return InteractionsAccepted(accepted=await services.interactions.record_async(items))
