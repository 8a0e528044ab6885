"""Catalog: search items by id or title; an item's metadata and interaction count; remove
and restore an item.

Remove calls the catalog API's own ``DELETE /v1/items/{id}`` handler
(``app.api.routes.catalog.delete_item``: ``app.catalog.removal``, then this
server's catalog sync, so the page after the redirect is already right), and
Restore undoes the removal alone (``app.catalog.restore_items``, then the same
sync), keeping whatever content the row holds when it runs (it used to PUT the
content it had read, overwriting a PUT that landed in between).
When this server's sync after the commit failed (``refresh_pending``), the
notice says the change is made but that this server applies it at its next
reload poll, not that it lists (or no longer lists) the item now.
Failures are mapped as the API maps them and shown on the item's page; a
success redirects to it with a one-shot notice (Post/Redirect/Get), so a reload
repeats nothing. Removing asks for confirmation in the browser (``data-confirm``,
as rollback does); both are idempotent on the server: a second Remove keeps
the first removal's time, a Restore of a live item changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from app.api.deps import services_of
from app.api.params import StorableText
from app.api.routes import catalog as catalog_api
from app.catalog import CatalogSync, read_item, restore_items
from app.core.errors import ApiError
from app.dashboard.auth import CsrfDep, DashboardSession, SessionDep, redirect_with_notice
from app.dashboard.catalog_view import SEARCH_LIMIT, item_card, search_items
from app.dashboard.formatting import item_href, utc
from app.dashboard.templating import render
from app.serving.loaded import LoadedModel
from app.serving.state import database_unavailable

log = logging.getLogger(__name__)

router = APIRouter()

#: A committed change this server's catalog sync could not apply (``refresh_pending``).
PENDING = (
    "this server could not refresh its catalog (see its log); it applies the change at "
    "its next reload poll."
)


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


async def _item(
    request: Request,
    item_id: str,
    session: DashboardSession,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The item's page; an action that failed shows its ``problem`` on it (its status)."""
    model = _default_model(request)
    try:
        card = await run_in_threadpool(item_card, services_of(request).sessions, model, item_id)
    except SQLAlchemyError as exc:
        message = f"database unavailable: {type(exc).__name__}"
        return render(
            request,
            "error.html",
            session,
            status_code=503,
            active="Catalog",
            message=message if problem is None else f"{problem} ({message})",
        )
    if card is None:
        return render(
            request,
            "error.html",
            session,
            status_code=404 if problem is None else status_code,
            active="Catalog",
            message=problem
            or f"item '{item_id}' is neither in the catalog nor in the served model",
        )
    return render(
        request,
        "item.html",
        session,
        status_code=status_code,
        active="Catalog",
        card=card,
        problem=problem,
    )


def _catalog(request: Request) -> CatalogSync:
    """This server's catalog sync (``app.state.catalog``), as the API's routes get it."""
    catalog: CatalogSync = request.app.state.catalog
    return catalog


@router.post("/dashboard/catalog/item/remove", response_class=HTMLResponse)
async def remove_item(
    request: Request, session: CsrfDep, item_id: Annotated[StorableText, Form()]
) -> Response:
    """Remove the item, through ``DELETE /v1/items/{item_id}``'s own handler."""
    services = services_of(request)
    started = datetime.now(UTC)
    try:
        removed = await run_in_threadpool(
            catalog_api.delete_item, item_id, services, _catalog(request)
        )
    except ApiError as exc:
        return await _item(request, item_id, session, exc.message, exc.status)
    if removed.removed_at is not None and removed.removed_at < started:  # a second click
        notice = (
            f"Item {item_id} was already removed, at {utc(removed.removed_at)}; nothing changed."
        )
        if removed.refresh_pending:
            notice += f" Note: {PENDING} Until then it may still list the item."
    elif removed.refresh_pending:
        notice = (
            f"Item {item_id} removed from the catalog, but {PENDING} Until then it may "
            "still list the item. Restore brings it back."
        )
    else:
        notice = (
            f"Item {item_id} removed from the catalog: this server lists it nowhere now, the "
            "others drop it at their next reload poll. Restore brings it back."
        )
    return redirect_with_notice(request, session, item_href(item_id), notice)


@router.post("/dashboard/catalog/item/restore", response_class=HTMLResponse)
async def restore_item(
    request: Request, session: CsrfDep, item_id: Annotated[StorableText, Form()]
) -> Response:
    """Restore a removed item as stored: only its removal is undone, in one statement
    that also checks it is removed (``app.catalog.restore_items``).

    It read the row and then PUT its stored content through the API's handler, two
    transactions: a PUT or an import landing between them was overwritten by what
    the Restore had read. The read below only answers early (unknown, or live)."""
    services = services_of(request)
    try:
        services.recommender.check_id(item_id, "item_id")  # as the API's routes check it
        row = await run_in_threadpool(read_item, services.sessions, item_id)
        if row is None:
            problem = f"item '{item_id}' is not in the catalog; nothing was restored"
            return await _item(request, item_id, session, problem, 404)
        if row.removed_at is None:  # a second click, another operator
            notice = f"Item {item_id} is in the catalog (not removed); nothing changed."
            return redirect_with_notice(request, session, item_href(item_id), notice)
        outcome = await run_in_threadpool(restore_items, services.sessions, [item_id])
        catalog = _catalog(request)
        # This server serves it before answering, unless that sync failed (logged).
        applied = await run_in_threadpool(catalog.sync_now)
    except SQLAlchemyError as exc:
        error = database_unavailable(exc)
        return await _item(request, item_id, session, error.message, error.status)
    except ApiError as exc:
        return await _item(request, item_id, session, exc.message, exc.status)
    if outcome[item_id] != "restored":  # restored meanwhile (a PUT, an import, a click)
        notice = (
            f"Item {item_id} was put back in the catalog meanwhile, by another writer; "
            "nothing changed (its content is theirs)."
        )
        return redirect_with_notice(request, session, item_href(item_id), notice)
    if not applied:
        log.warning("item %r restored, but this server could not apply it yet", item_id)
        notice = (
            f"Item {item_id} restored in the catalog, but {PENDING} Until then it lists the "
            "item nowhere."
        )
        return redirect_with_notice(request, session, item_href(item_id), notice)
    notice = (
        f"Item {item_id} restored: this server lists it again now, the others at their "
        "next reload poll."
    )
    return redirect_with_notice(request, session, item_href(item_id), notice)
