"""Item links reach the item they name, whatever its id holds ('/', dot segments, '?', '%')."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from app.core.db import session_scope
from app.repository import NewItem, upsert_items
from tests.app.conftest import ClientFactory
from tests.app.dashboard.login import log_in

TOKEN = "dash-links-token-0c4e"
ODD_IDS = ["a/../b", "b", "con/x", "/lead", "a/", "x?y#z", "100%", "..", ".", "a b", "⭐星"]


@pytest.fixture
def dash(make_client: ClientFactory) -> TestClient:
    client = make_client(admin_token=TOKEN, default_model="ease")
    log_in(client, TOKEN)
    items = [NewItem(item_id, f"Odd {item_id}", None, {}) for item_id in ODD_IDS]
    with session_scope(client.app.state.services.sessions) as session:  # type: ignore[attr-defined]
        upsert_items(session, items, datetime(2026, 12, 6, tzinfo=UTC))
    return client


def _card_id(page: str) -> str:
    found = re.search(r"<dt>Item id</dt><dd[^>]*>(.*?)</dd>", page)
    assert found, page[:2000]
    return html.unescape(found.group(1))


def test_every_search_hit_links_to_its_own_item(dash: TestClient) -> None:
    page = dash.get("/dashboard/catalog", params={"q": "Odd "}).text
    links = dict(
        (html.unescape(item_id), html.unescape(href))
        for href, item_id in re.findall(r'<td[^>]*><a href="([^"]+)">(.*?)</a></td>', page)
    )
    assert sorted(links) == sorted(ODD_IDS)
    assert links["a/../b"] == "/dashboard/catalog/items/a%2F..%2Fb"
    for item_id, href in links.items():
        answer = dash.get(href)
        assert answer.status_code == 200, (item_id, href, answer.text[:500])
        assert _card_id(answer.text) == item_id, href
        similar = re.search(
            r'<a href="(/dashboard/explore\?item=[^"]*)">Similar items</a>', answer.text
        )
        assert similar, answer.text[-800:]
        assert (
            dash.get(html.unescape(similar.group(1))).text.count(
                f'Items similar to <span class="id">{html.escape(item_id)}</span>'
            )
            == 1
        )


def test_dot_ids_go_by_query_and_other_ids_by_path(dash: TestClient) -> None:
    assert _card_id(dash.get("/dashboard/catalog/item", params={"id": ".."}).text) == ".."
    assert _card_id(dash.get("/dashboard/catalog/item", params={"id": "a/../b"}).text) == "a/../b"
    assert _card_id(dash.get("/dashboard/catalog/items/con%2Fx").text) == "con/x"
    assert _card_id(dash.get("/dashboard/catalog/items/con/x").text) == "con/x"  # '/' as typed
    assert dash.get("/dashboard/catalog/item", params={"id": "nope"}).status_code == 404
