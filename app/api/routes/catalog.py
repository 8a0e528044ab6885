"""Item catalog: ``PUT`` and ``DELETE /v1/items/{item_id}`` (admin), ``GET /v1/items/{item_id}``.

The ``CatalogSync`` these routes read and nudge (``app.state.catalog``) is
started and stopped by the app's lifespan (``app.main``).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from app.api.admin_auth import AdminRoute, require_admin
from app.api.deps import ServicesDep
from app.api.params import ItemIdPath
from app.api.responses import ADMIN, BODY, errors
from app.catalog import (
    CatalogError,
    CatalogSync,
    UnknownItems,
    read_item,
    remove_items,
    save_items,
    validate_item,
)
from app.core.errors import ApiError
from app.repository import ItemRow
from app.schemas_catalog import ItemChangeResponse, ItemIn, ItemResponse, ItemServing
from app.serving.state import database_unavailable

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["catalog"], route_class=AdminRoute)


async def get_catalog(request: Request) -> CatalogSync:
    catalog: CatalogSync = request.app.state.catalog
    return catalog


CatalogDep = Annotated[CatalogSync, Depends(get_catalog)]


@router.put(
    "/items/{item_id:id}",
    response_model=ItemChangeResponse,
    dependencies=[Depends(require_admin)],
    responses={
        201: {"model": ItemChangeResponse, "description": "the item was created"},
        **errors(*ADMIN, *BODY, 503),
    },
)
def put_item(
    item_id: ItemIdPath,
    body: ItemIn,
    response: Response,
    services: ServicesDep,
    catalog: CatalogDep,
) -> ItemChangeResponse:
    """Add or replace a catalog item (admin token). 201 when new, 200 otherwise.

    A text-aware production model (ConvMF) scores a new item from ``text`` at
    once on this server and at the next reload poll on the others. PUT of a
    removed item restores it (200, ``removed_at`` null), whatever its body.

    ``refresh_pending`` true: the item is stored, but this server's sync after the
    write failed, so this server serves it at its next reload poll, as the other
    replicas do (a 503 would say nothing was written; a retry is safe either way).
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
    applied = catalog.sync_now()  # this server serves it before answering
    if not applied:
        _pending("stored", item_id)
    response.status_code = 201 if outcome == "created" else 200
    return _changed(row, catalog, applied)


@router.delete(
    "/items/{item_id:id}",
    response_model=ItemChangeResponse,
    dependencies=[Depends(require_admin)],
    responses=errors(*ADMIN, 404, 422, 503),
)
def delete_item(
    item_id: ItemIdPath, services: ServicesDep, catalog: CatalogDep
) -> ItemChangeResponse:
    """Remove a catalog item (admin token): it leaves every list the service answers.

    Users' recommendations (GET and POST), similar lists, popularity fallbacks and
    experiment variants, exact or from the index, with or without business rules:
    lists stay k long while enough other items remain. This server drops it before
    answering, the other replicas at their next reload poll.

    A soft removal: 200 with the item, ``removed_at`` set and ``serving`` empty.
    Removing a removed item again is 200 too, with the first removal's time. A
    later ``PUT`` of the id restores it. Interactions with it are still accepted
    and logged, and ``GET /v1/items/{item_id}/similar`` still answers for it
    (alternatives to a discontinued product), without removed items. Rating
    predictions (``POST /v1/predictions``) still rate it: the caller named it.
    ``GET /v1/items/{item_id}`` of a removed item is a 404 saying so.

    ``refresh_pending`` true: the removal is committed, but this server's sync after it
    failed, so this server still lists the item until its next reload poll, as the other
    replicas do, and ``serving`` names the models that still serve it here.

    404 ``unknown_item``: the id is not in the catalog (nothing is written).
    """
    services.recommender.check_id(item_id, "item_id")
    try:
        remove_items(services.sessions, [item_id])
        row = read_item(services.sessions, item_id)
    except UnknownItems as exc:
        raise ApiError(404, "unknown_item", _not_in_catalog(item_id)) from exc
    except SQLAlchemyError as exc:
        raise database_unavailable(exc) from exc
    assert row is not None  # removal keeps the row
    applied = catalog.sync_now()  # this server stops serving it before answering
    if not applied:
        _pending("removed", item_id)
    return _changed(row, catalog, applied)


@router.get("/items/{item_id:id}", response_model=ItemResponse, responses=errors(404, 422, 503))
def get_item(item_id: ItemIdPath, services: ServicesDep, catalog: CatalogDep) -> ItemResponse:
    """A catalog item and which loaded models can recommend it (``from_text`` or trained).

    404 ``unknown_item`` for an id that is not in the catalog, and for a removed item
    (``DELETE``): its message says when it was removed (``details.removed_at``) and that
    a ``PUT`` restores it.
    """
    # An id PUT would refuse is a 422 here too, not a 404 that suggests that PUT.
    services.recommender.check_id(item_id, "item_id")
    try:
        row = read_item(services.sessions, item_id)
    except SQLAlchemyError as exc:
        raise database_unavailable(exc) from exc
    if row is None:
        raise ApiError(404, "unknown_item", _not_in_catalog(item_id))
    if row.removed_at is not None:
        when = row.removed_at.isoformat()
        raise ApiError(
            404,
            "unknown_item",
            f"item '{item_id}' was removed from the catalog at {when}; PUT /v1/items/{item_id} "
            "restores it",
            details={"removed_at": when},
        )
    return _response(row, catalog)


def _not_in_catalog(item_id: str) -> str:
    return f"item '{item_id}' is not in the catalog; add it with PUT /v1/items/{item_id}"


def _pending(done: str, item_id: str) -> None:
    log.warning(
        "item %r %s, but this server could not apply it yet (see above); it will at its "
        "next reload poll",
        item_id,
        done,
    )


def _response(row: ItemRow, catalog: CatalogSync, live: bool | None = None) -> ItemResponse:
    """``live``: whether to say which models serve the item (by default: unless removed)."""
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
        ]
        if (row.removed_at is None if live is None else live)
        else [],
        removed_at=row.removed_at,
    )


def _changed(row: ItemRow, catalog: CatalogSync, applied: bool) -> ItemChangeResponse:
    """A write's answer; while the change is pending here, ``serving`` is what this server
    serves (a removed item it still lists), not what it will once it applies it."""
    live = row.removed_at is None or not applied
    return ItemChangeResponse(**dict(_response(row, catalog, live)), refresh_pending=not applied)
