"""Catalog: search items by id or title; an item's metadata and interaction count."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from app.api.deps import services_of
from app.api.params import StorableText
from app.dashboard.auth import DashboardSession, SessionDep
from app.dashboard.catalog_view import SEARCH_LIMIT, item_card, search_items
from app.dashboard.templating import render
from app.serving.loaded import LoadedModel

router = APIRouter()


def _default_model(request: Request) -> LoadedModel | None:
    holder = services_of(request).holder
    return holder.peek(holder.default_model)


@router.get("/dashboard/catalog", response_class=HTMLResponse)
async def catalog_page(
    request: Request, session: SessionDep, q: Annotated[StorableText, Query(max_length=256)] = ""
) -> HTMLResponse:
    model = _default_model(request)
    try:
        found = await run_in_threadpool(search_items, services_of(request).sessions, model, q)
        problem = None
    except SQLAlchemyError as exc:
        found, problem = None, f"database unavailable: {type(exc).__name__}"
    return render(
        request,
        "catalog.html",
        session,
        active="Catalog",
        q=q,
        found=found,
        limit=SEARCH_LIMIT,
        model=model,
        problem=problem,
    )


@router.get("/dashboard/catalog/items/{item_id:id}", response_class=HTMLResponse)
async def item_page(request: Request, item_id: StorableText, session: SessionDep) -> HTMLResponse:
    """One item; links escape the id whole (``item_href``), so ``a%2F..%2Fb`` names ``a/../b``."""
    return await _item(request, item_id, session)


@router.get("/dashboard/catalog/item", response_class=HTMLResponse)
async def item_by_query(
    request: Request, session: SessionDep, item_id: Annotated[StorableText, Query(alias="id")] = ""
) -> HTMLResponse:
    """The same page for ids no path can carry: "." and ".." are dot segments to a browser
    (escaped too: the URL standard reads "%2e%2e" as ".."), which it removes from the path."""
    return await _item(request, item_id, session)


async def _item(request: Request, item_id: str, session: DashboardSession) -> HTMLResponse:
    model = _default_model(request)
    try:
        card = await run_in_threadpool(item_card, services_of(request).sessions, model, item_id)
    except SQLAlchemyError as exc:
        return render(
            request,
            "error.html",
            session,
            status_code=503,
            active="Catalog",
            message=f"database unavailable: {type(exc).__name__}",
        )
    if card is None:
        return render(
            request,
            "error.html",
            session,
            status_code=404,
            active="Catalog",
            message=f"item '{item_id}' is neither in the catalog nor in the served model",
        )
    return render(request, "item.html", session, active="Catalog", card=card)
