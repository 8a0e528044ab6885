"""The Catalog page's search: the exact id always first, and the caption says when the hits
are not all of the matches (and how many there are), on SQLite and Postgres."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.dashboard.catalog_view import SEARCH_LIMIT, natural_key, search_items
from app.repository import NewItem, upsert_items
from app.serving.loaded import LoadedModel, build_loaded_model
from models_store import ModelStore
from tests.app.conftest import N_ITEMS, ClientFactory
from tests.app.dashboard.login import log_in
from tests.conftest import POSTGRES_ADMIN_URL, scratch_database

TOKEN = "dash-search-token-2f90"
NOW = datetime(2026, 12, 6, tzinfo=UTC)
#: Catalog rows whose titles contain every digit: more than a page for any digit searched.
SPARES = [
    NewItem(f"spare-{n:02d}", f"Spare 0123456789 no. {n}", None, {})
    for n in range(SEARCH_LIMIT + 10)
]


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/search.db"
        upgrade_database(url)
        engine = make_engine(url)
        yield make_sessionmaker(engine)
        engine.dispose()
        return
    try:
        scratch = scratch_database(POSTGRES_ADMIN_URL, "genrec_dash_search")
        url = scratch.__enter__()
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable ({exc})")
    try:
        upgrade_database(url)
        engine = make_engine(url)
        yield make_sessionmaker(engine)
        engine.dispose()
    finally:
        scratch.__exit__(None, None, None)


@pytest.fixture(scope="module")
def ease(trained_store_dir: Path) -> LoadedModel:
    """The tiny ease: items "0".."59" titled "Item <id>"."""
    torch.set_num_threads(1)
    store = ModelStore(trained_store_dir)
    return build_loaded_model(store.load("ease", store.resolve("ease")), torch.device("cpu"))


def _add(sessions: sessionmaker[Session], items: list[NewItem]) -> None:
    with session_scope(sessions) as session:
        upsert_items(session, items, NOW)


def test_the_exact_id_comes_first_even_past_a_full_page(
    sessions: sessionmaker[Session], ease: LoadedModel
) -> None:
    _add(sessions, SPARES)
    for query in ["5", "9", "2"]:
        found = search_items(sessions, ease, query)
        assert len(found.hits) == SEARCH_LIMIT
        assert found.hits[0].item_id == query, [h.item_id for h in found.hits[:5]]
        assert (found.hits[0].in_model, found.hits[0].in_catalog) == (True, False)
        assert found.truncated
    found = search_items(sessions, ease, "5")
    model_matches = [i for i in ease.item_ids if "5" in i]  # titles are "Item <id>"
    assert (found.in_catalog, found.in_model) == (len(SPARES), len(model_matches))
    # More catalog matches than a page, and the model matches too: the union's size is not
    # read, so the caption gives each source's count (see the page test).
    assert found.total is None
    rest = [h.item_id for h in found.hits[1:]]
    assert rest == sorted(rest, key=natural_key)


def test_the_count_is_exact_when_the_catalog_fits_a_page(
    sessions: sessionmaker[Session], ease: LoadedModel
) -> None:
    # Two catalog rows for items the model has (one titled differently), one of its own.
    _add(
        sessions,
        [
            NewItem("3", "Item 3", None, {}),
            NewItem("4", "Four", None, {}),
            NewItem("x", "Item x", None, {}),
        ],
    )
    found = search_items(sessions, ease, "item")
    assert (found.in_catalog, found.in_model) == (2, N_ITEMS)
    assert found.total == N_ITEMS + 1  # "3" counted once; "x" is the catalog's own
    assert len(found.hits) == SEARCH_LIMIT and found.truncated
    assert [h.item_id for h in found.hits[:4]] == ["0", "1", "2", "3"]
    by_id = {h.item_id: h for h in found.hits}
    assert by_id["4"].in_catalog and by_id["4"].title == "Four"  # catalog title, not matched
    assert by_id["3"].in_catalog and by_id["3"].in_model
    small = search_items(sessions, ease, "Four")
    assert ([h.item_id for h in small.hits], small.total, small.truncated) == (["4"], 1, False)
    assert search_items(sessions, None, "x").total == 1  # no model served


def test_the_page_says_how_many_match(make_client: ClientFactory) -> None:
    dash: TestClient = make_client(admin_token=TOKEN, default_model="ease")
    log_in(dash, TOKEN)
    caption = re.compile(r'<caption data-testid="hits-count">(.*?)</caption>', re.S)

    def hits(query: str) -> tuple[str, list[str]]:
        page = dash.get("/dashboard/catalog", params={"q": query}).text
        found = caption.search(page)
        assert found, page[-3000:]
        return found.group(1).strip(), re.findall(
            r'<td class="id"><a href="[^"]*">([^<]*)</a>', page
        )

    text, ids = hits("item")
    assert (
        text
        == f"{SEARCH_LIMIT} of {N_ITEMS} items matching “item” shown, the exact id first; refine the search to see the others"
    )
    assert ids[:3] == ["0", "1", "2"]
    assert hits("Item 42") == ("1 item matching “Item 42”", ["42"])
    _add(dash.app.state.services.sessions, SPARES)  # type: ignore[attr-defined]
    text, ids = hits("5")
    assert ids[0] == "5"
    assert text.startswith(f"{SEARCH_LIMIT} of the items matching “5” shown, the exact id first (")
    assert f"{len(SPARES)} in the catalog, 15 in the served model" in text


def test_the_search_cache_does_not_keep_a_swapped_out_model_alive(
    trained_store_dir: Path, tmp_path: Path
) -> None:
    import gc

    from app.dashboard import catalog_view

    url = f"sqlite:///{tmp_path}/cache.db"
    upgrade_database(url)
    engine = make_engine(url)
    store = ModelStore(trained_store_dir)
    model = build_loaded_model(store.load("ease", store.resolve("ease")), torch.device("cpu"))
    assert search_items(make_sessionmaker(engine), model, "item 7").hits[0].item_id == "7"
    assert catalog_view._LOWERED[0][0]() is model
    del model
    gc.collect()
    assert catalog_view._LOWERED[0][0]() is None
    engine.dispose()
