"""Item catalog: ``PUT /v1/items/{item_id}`` (admin) and ``GET /v1/items/{item_id}``.

The ``CatalogSync`` these routes read and nudge (``app.state.catalog``) is
started and stopped by the app's lifespan (``app.main``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from app.api.admin_auth import require_admin
from app.api.deps import ServicesDep
from app.api.params import ItemIdPath
from app.api.responses import ADMIN, BODY, errors
from app.catalog import (
    CatalogError,
    CatalogSync,
    read_item,
    save_items,
    validate_item,
)
from app.core.errors import ApiError
from app.repository import ItemRow
from app.schemas_catalog import ItemIn, ItemResponse, ItemServing
from app.serving.state import database_unavailable

router = APIRouter(prefix="/v1", tags=["catalog"])


async def get_catalog(request: Request) -> CatalogSync:
    catalog: CatalogSync = request.app.state.catalog
    return catalog


CatalogDep = Annotated[CatalogSync, Depends(get_catalog)]


@router.put(
    "/items/{item_id:id}",
    response_model=ItemResponse,
    dependencies=[Depends(require_admin)],
    responses={
        201: {"model": ItemResponse, "description": "the item was created"},
        **errors(*ADMIN, *BODY, 503),
    },
)
def put_item(
    item_id: ItemIdPath,
    body: ItemIn,
    response: Response,
    services: ServicesDep,
    catalog: CatalogDep,
) -> ItemResponse:
    """Add or replace a catalog item (admin token). 201 when new, 200 otherwise.

    A text-aware production model (ConvMF) scores a new item from ``text`` at
    once on this server and at the next reload poll on the others.
    """
    try:
        item = validate_item(
            item_id, body.title, body.text, body.attributes, services.settings.max_id_length
        )
        # The kinds are checked in the write's transaction, against the database: this
        # server's catalog (``services.attributes``) lags other replicas' PUTs.
        outcome = save_items(services.sessions, [item])[item_id]
        row = read_item(services.sessions, item_id)
    except CatalogError as exc:
        raise ApiError(422, "invalid_item", str(exc)) from exc
    except SQLAlchemyError as exc:
        raise database_unavailable(exc) from exc
    assert row is not None  # just written in a committed transaction
    catalog.sync_now()  # this server serves it before answering
    response.status_code = 201 if outcome == "created" else 200
    return _response(row, catalog)


@router.get("/items/{item_id:id}", response_model=ItemResponse, responses=errors(404, 422, 503))
def get_item(item_id: ItemIdPath, services: ServicesDep, catalog: CatalogDep) -> ItemResponse:
    """A catalog item and which loaded models can recommend it (``from_text`` or trained)."""
    # An id PUT would refuse is a 422 here too, not a 404 that suggests that PUT.
    services.recommender.check_id(item_id, "item_id")
    try:
        row = read_item(services.sessions, item_id)
    except SQLAlchemyError as exc:
        raise database_unavailable(exc) from exc
    if row is None:
        raise ApiError(
            404,
            "unknown_item",
            f"item '{item_id}' is not in the catalog; add it with PUT /v1/items/{item_id}",
        )
    return _response(row, catalog)


def _response(row: ItemRow, catalog: CatalogSync) -> ItemResponse:
    return ItemResponse(
        item_id=row.item_id,
        title=row.title,
        text=row.text,
        attributes=row.attributes,
        created_at=row.created_at,
        updated_at=row.updated_at,
        serving=[
            ItemServing(model=model.name, version=model.version, from_text=from_text)
            for model, from_text in catalog.describe(row.item_id)
        ],
    )
