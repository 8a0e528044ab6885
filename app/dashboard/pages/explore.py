"""Explore: a user's history beside each served model's list; similar items; text placement.

Lists come from ``app.dashboard.preview`` (the serving code, impressions off).
A user the models have never seen gets what the API gives them: the
popularity fallback, flagged as such. Placing a new item's text is a POST
(the text can be long) that changes nothing on the server.

Removed items are in no list (the previewer masks them as serving does), but
a user's history still holds them (history is history), and a similar list
may be asked for one: those are tagged "removed", from the catalog table (or,
while it cannot be read, from this server's removed set).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from app.api.deps import services_of
from app.api.params import StorableText
from app.core.errors import ApiError
from app.dashboard.auth import CsrfDep, DashboardSession, SessionDep
from app.dashboard.catalog_view import CatalogNotes, catalog_notes
from app.dashboard.forms import form_field, form_text, large_form
from app.dashboard.preview import Placement, Previewer, place_text
from app.dashboard.templating import render
from app.schemas import RecommendationResponse, SimilarItemsResponse

router = APIRouter()

LIST_K = 10
MAX_TEXT = 20_000


def previewer(request: Request) -> Previewer:
    """The app's ``Previewer``, made on first use (closed by ``app.dashboard.close``)."""
    found: Previewer | None = getattr(request.app.state, "dashboard_previewer", None)
    if found is None:
        found = Previewer(services_of(request))
        request.app.state.dashboard_previewer = found
    return found


@dataclass
class ModelList:
    model: str
    answer: RecommendationResponse | None
    problem: str | None


async def _lists(preview: Previewer, user: str) -> list[ModelList]:
    lists = []
    for model in preview.served_models():
        try:
            lists.append(ModelList(model, await preview.recommend(user, model, LIST_K), None))
        except ApiError as exc:
            lists.append(ModelList(model, None, exc.message))
    return lists


async def _page(
    request: Request,
    session: DashboardSession,
    user: str = "",
    item: str = "",
    placement: Placement | None = None,
    text_form: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    preview = previewer(request)
    holder = services_of(request).holder
    # Ids are opaque, as on the API: " spaced " is not "spaced" (nothing is stripped).
    history: list[tuple[str, str | None]] | None = None
    logged: int | None = None
    lists: list[ModelList] = []
    user_problem = None
    if user:
        try:
            history = await preview.history(user, holder.default_model)
            if not history:
                logged = await preview.logged_events(user)
            lists = await _lists(preview, user)
        except ApiError as exc:
            user_problem = exc.message
    similar: SimilarItemsResponse | None = None
    item_problem = None
    if item:
        try:
            similar = await preview.recommender.similar(item, LIST_K, None)
        except ApiError as exc:
            item_problem = exc.message
    notes = await _catalog_notes(request, history, lists, similar, placement)
    return render(
        request,
        "explore.html",
        session,
        status_code=status_code,
        active="Explore",
        user=user,
        item=item,
        history=history,
        logged=logged,
        lists=lists,
        user_problem=user_problem,
        similar=similar,
        item_problem=item_problem,
        default_model=holder.default_model,
        text_models=await preview.text_models(),
        sample_users=_sample_users(request),
        placement=placement,
        titles=notes.titles,
        removed=notes.removed,
        text_form=text_form or {},
        problem=problem,
        max_text=MAX_TEXT,
    )


def _sample_users(request: Request, n: int = 50) -> list[str]:
    """A few users the default model was trained on, offered as suggestions in the user field;
    never an erased user (``DELETE /v1/users/{id}``), whose id the version still lists."""
    services = services_of(request)
    loaded = services.holder.peek(services.holder.default_model)
    if loaded is None:
        return []
    return list(islice((u for u in loaded.user_index if u not in services.erased), n))


async def _catalog_notes(
    request: Request,
    history: list[tuple[str, str | None]] | None,
    lists: list[ModelList],
    similar: SimilarItemsResponse | None,
    placement: Placement | None,
) -> CatalogNotes:
    """Catalog titles of the shown items the model has none for (a model trained on data
    without titles still shows the names the catalog gives its items), and which shown
    items are removed from the catalog."""
    shown = {item_id for item_id, _ in history or []}
    lists_shown = [e.answer.items for e in lists if e.answer is not None]
    lists_shown += [similar.items] if similar is not None else []
    lists_shown += [placement.neighbours] if placement is not None else []
    shown |= {it.item_id for items in lists_shown for it in items}
    shown |= {similar.item_id} if similar is not None else set()
    try:
        return await run_in_threadpool(catalog_notes, services_of(request).sessions, sorted(shown))
    except SQLAlchemyError:
        # Titles are a nicety; that an item is removed is not: this server's removed set
        # (what its lists mask) still says which, without the time.
        removed_ids = services_of(request).removed.ids
        return CatalogNotes({}, {item_id: None for item_id in shown if item_id in removed_ids})


@router.get("/dashboard/explore", response_class=HTMLResponse)
async def explore_page(
    request: Request,
    session: SessionDep,
    user: Annotated[StorableText, Query(max_length=256)] = "",
    item: Annotated[StorableText, Query(max_length=256)] = "",
) -> HTMLResponse:
    return await _page(request, session, user=user, item=item)


@router.post("/dashboard/explore/text", response_class=HTMLResponse)
async def place_new_item(
    request: Request,
    fields: Annotated[FormData, Depends(large_form)],  # first: before CsrfDep reads the form
    session: CsrfDep,
) -> HTMLResponse:
    """Where an item with this text would land (nearest items), without adding it.

    The text is read with LF line breaks (``forms.form_text``): the field's ``maxlength``
    is ``MAX_TEXT`` as the browser counts, which is not what its CRLF submission holds.
    The form is parsed with fields up to the dashboard's body limit (``forms.large_form``),
    so a text too long gets this page's message, not Starlette's bare 400 past 1 MiB."""
    model, title = form_field(fields, "model"), form_field(fields, "title")
    text = form_text(form_field(fields, "text"))
    form = {"model": model, "title": title, "text": text}
    if not text.strip() or len(text) > MAX_TEXT:
        problem = f"Paste the item's text (1 to {MAX_TEXT} characters)."
        return await _page(request, session, text_form=form, problem=problem, status_code=422)
    preview = previewer(request)
    try:
        loaded = await preview.recommender.model_async(model or None)
        placement = await run_in_threadpool(
            place_text,
            loaded,
            title or None,
            text,
            LIST_K,
            preview.recommender.removed,
            preview.recommender.titles,
        )
    except ApiError as exc:
        return await _page(
            request, session, text_form=form, problem=exc.message, status_code=exc.status
        )
    return await _page(request, session, placement=placement, text_form=form)
