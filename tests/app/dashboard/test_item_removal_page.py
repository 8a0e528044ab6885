"""Removed items on the dashboard: tagged wherever an item is shown (Catalog search, the
item's page, Explore's history and similar heading), and removed and restored from the
item's page through the catalog API's own handlers (CSRF, an expired session, an unknown
item, the database failing); on SQLite and on the real Postgres.

The tiny store's default model here (ease) has items ``0`` .. ``59`` titled ``Item <id>``;
every test puts them in the catalog first (only a catalog item can be removed).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy.exc import OperationalError

import app.api.routes.catalog as catalog_api
import app.dashboard.pages.catalog as catalog_page
from app.dashboard.auth import _serializer
from tests.app.dashboard.login import log_in

TOKEN = "dash-removal-token-7b21"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
N_ITEMS = 60
TAG = re.compile(r'<span class="tag removed" data-testid="removed-tag">removed( [^<]+)?</span>')


@pytest.fixture
def dash(blank_database_url: str, make_client: Callable[..., TestClient]) -> TestClient:
    """Logged in, on this test's database, the 60 items in the catalog with a text and an
    attribute (what a restore must keep)."""
    client = make_client(admin_token=TOKEN, default_model="ease", database_url=blank_database_url)
    for i in range(N_ITEMS):
        body = {"title": f"Item {i}", "text": f"text of {i}", "attributes": {"side": i % 2}}
        assert client.put(f"/v1/items/{i}", json=body, headers=AUTH).status_code == 201
    log_in(client, TOKEN)
    return client


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:2000]
    return match.group(1)


def _notice(page: str) -> str | None:
    match = re.search(r'<p class="notice" role="status">([^<]*)</p>', page)
    return html.unescape(match.group(1)) if match else None


def _problem(page: str) -> str:
    match = re.search(r'<p class="problem" role="alert">([^<]*)</p>', page)
    assert match, page[:3000]
    return html.unescape(match.group(1))


def _post(client: TestClient, action: str, item_id: str, **extra: Any) -> Any:
    token = _csrf(client.get(f"/dashboard/catalog/items/{item_id}").text)
    return client.post(
        f"/dashboard/catalog/item/{action}",
        data={"item_id": item_id, "csrf_token": token},
        follow_redirects=False,
        **extra,
    )


def _user_list(client: TestClient, user: str) -> list[str]:
    answer = client.get(f"/v1/users/{user}/recommendations", params={"k": 10})
    assert answer.status_code == 200, answer.text
    return [item["item_id"] for item in answer.json()["items"]]


def test_remove_then_restore_from_the_items_page(dash: TestClient) -> None:
    page = dash.get("/dashboard/catalog/items/7").text
    assert not TAG.search(page) and "/dashboard/catalog/item/restore" not in page
    form = re.search(r'<form method="post" action="/dashboard/catalog/item/remove"[^>]*>', page)
    assert form and "data-confirm=" in form.group(0) and "Item 7" in form.group(0)
    served = _user_list(dash, "u1")

    removed = _post(dash, "remove", "7")
    assert (removed.status_code, removed.headers["location"]) == (
        303,
        "/dashboard/catalog/items/7",
    )
    after = dash.get(removed.headers["location"]).text
    assert "Item 7 removed from the catalog" in (_notice(after) or "")
    tag = TAG.search(after)
    assert tag and tag.group(1)  # with its time
    assert 'action="/dashboard/catalog/item/restore"' in after
    assert 'action="/dashboard/catalog/item/remove"' not in after
    assert _notice(dash.get("/dashboard/catalog/items/7").text) is None  # shown once
    # The API's own answers: the item is gone from GET and from lists on this server now.
    assert dash.get("/v1/items/7").json()["error"] == "unknown_item"
    assert "7" not in _user_list(dash, "u1") and len(_user_list(dash, "u1")) == len(served)
    stamp = dash.get("/v1/items/7").json()["details"]["removed_at"]

    again = _post(dash, "remove", "7")  # a second click, another operator: nothing moves
    assert "was already removed" in (_notice(dash.get(again.headers["location"]).text) or "")
    assert dash.get("/v1/items/7").json()["details"]["removed_at"] == stamp

    restored = _post(dash, "restore", "7")
    assert (restored.status_code, restored.headers["location"]) == (
        303,
        "/dashboard/catalog/items/7",
    )
    back = dash.get(restored.headers["location"]).text
    assert "Item 7 restored" in (_notice(back) or "")
    assert not TAG.search(back) and 'action="/dashboard/catalog/item/remove"' in back
    item = dash.get("/v1/items/7").json()  # as stored: title, text and attributes kept
    assert (item["title"], item["text"], item["attributes"], item["removed_at"]) == (
        "Item 7",
        "text of 7",
        {"side": 1},
        None,
    )
    assert item["serving"]  # this server serves it again, before the redirect
    assert _user_list(dash, "u1") == served

    twice = _post(dash, "restore", "7")
    assert "nothing changed" in (_notice(dash.get(twice.headers["location"]).text) or "")


def test_a_restore_keeps_what_another_writer_put_while_it_ran(
    dash: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restore read the removed row, then PUT its stored title, text and attributes in a
    second transaction: a PUT (another operator, a client, an import) landing between the
    two restored the item with new content, and the Restore then wrote the old content
    over it, saying "restored". A Restore now changes the removal only, and only of a
    removed item: what the other writer put stays, and the page says nothing changed."""
    assert dash.delete("/v1/items/7", headers=AUTH).status_code == 200
    newer = {"title": "Item 7, 2nd edition", "text": "new text", "attributes": {"side": 0}}
    real_read = catalog_page.read_item
    landed: list[int] = []

    def read_then_another_put(*args: Any, **kwargs: Any) -> Any:
        row = real_read(*args, **kwargs)
        if not landed:  # right after the Restore's read of the (removed) row
            landed.append(dash.put("/v1/items/7", json=newer, headers=AUTH).status_code)
        return row

    monkeypatch.setattr(catalog_page, "read_item", read_then_another_put)
    restored = _post(dash, "restore", "7")
    assert landed == [200]  # the other PUT restored it, with its own content
    assert restored.status_code == 303, restored.text
    monkeypatch.undo()
    notice = _notice(dash.get(restored.headers["location"]).text) or ""
    assert "nothing changed" in notice and "restored" not in notice.split(";")[-1], notice
    item = dash.get("/v1/items/7").json()
    assert {key: item[key] for key in newer} == newer and item["removed_at"] is None


def test_search_and_explore_tag_removed_items(
    dash: TestClient, seen_items: Callable[[str], set[str]]
) -> None:
    gone = sorted(seen_items("u1"))[0]
    assert dash.delete(f"/v1/items/{gone}", headers=AUTH).status_code == 200
    when = dash.get(f"/v1/items/{gone}").json()["details"]["removed_at"]

    page = dash.get("/dashboard/catalog", params={"q": f"Item {gone}"}).text
    row = re.search(rf'<tr><td class="id"><a href="[^"]+">{gone}</a>.*?</tr>', page, re.S)
    assert row, page
    tag = TAG.search(row.group(0))
    assert tag and tag.group(1) and tag.group(1).strip()[:19] == when[:19]
    live = sorted(set(map(str, range(N_ITEMS))) - {gone})[0]
    other = dash.get("/dashboard/catalog", params={"q": f"Item {live}"}).text
    live_row = re.search(rf'<tr><td class="id"><a href="[^"]+">{live}</a>.*?</tr>', other, re.S)
    assert live_row and not TAG.search(live_row.group(0))

    explore = dash.get("/dashboard/explore", params={"user": "u1", "item": gone}).text
    history = explore.split('data-testid="history"')[1].split("</div>")[0]
    entries = re.findall(r"<li>.*?</li>", history)
    tagged = [entry for entry in entries if TAG.search(entry)]
    assert len(tagged) == 1 and f'href="/dashboard/catalog/items/{gone}"' in tagged[0]
    similar = explore.split('id="item-h"')[1].split("</section>")[0]
    heading = re.search(r"<p>(.*?) — by ", similar)
    assert heading and TAG.search(heading.group(1))  # the list is for a removed item
    assert len(TAG.findall(similar)) == 1  # and holds none
    for model_list in re.findall(r'data-testid="list-[^"]+">.*?</div>', explore, re.S):
        assert not TAG.search(model_list) and f">id {gone} ·" not in model_list


def test_explore_tags_removed_items_while_the_catalog_cannot_be_read(
    dash: TestClient, seen_items: Callable[[str], set[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """This server's removed set still says which items are removed (without the time)."""
    import app.dashboard.pages.explore as explore_page

    gone = sorted(seen_items("u1"))[0]
    assert dash.delete(f"/v1/items/{gone}", headers=AUTH).status_code == 200

    def unavailable(*_args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("database is down"))

    monkeypatch.setattr(explore_page, "catalog_notes", unavailable)
    explore = dash.get("/dashboard/explore", params={"user": "u1"})
    assert explore.status_code == 200
    history = explore.text.split('data-testid="history"')[1].split("</div>")[0]
    tags = TAG.findall(history)
    assert tags == [""]  # tagged, no time


def test_actions_need_the_csrf_token(dash: TestClient) -> None:
    for action in ("remove", "restore"):
        refused = dash.post(
            f"/dashboard/catalog/item/{action}", data={"item_id": "7"}, follow_redirects=False
        )
        assert refused.status_code == 403 and "CSRF" in refused.text
        forged = dash.post(
            f"/dashboard/catalog/item/{action}",
            data={"item_id": "7", "csrf_token": "forged"},
            follow_redirects=False,
        )
        assert forged.status_code == 403
    assert dash.get("/v1/items/7").json()["removed_at"] is None  # nothing was removed


def test_an_expired_session_removes_nothing_and_comes_back_after_login(
    dash: TestClient,
) -> None:
    token = _csrf(dash.get("/dashboard/catalog/items/7").text)

    class Yesterday(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 24 * 3600  # longer ago than the 8-hour sessions

    old = _serializer(TOKEN, "session")
    old.signer = Yesterday
    expired = old.dumps({"sid": "s" * 32, "csrf": token, "at": time.time() - 24 * 3600})
    dash.cookies.clear()
    dash.cookies.set("genrec_dashboard", expired, path="/dashboard")
    answer = dash.post(
        "/dashboard/catalog/item/remove",
        data={"item_id": "7", "csrf_token": token},
        headers={"Referer": "http://testserver/dashboard/catalog/items/7"},
        follow_redirects=False,
    )
    assert (answer.status_code, answer.headers["location"]) == (
        303,
        "/dashboard/login?next=/dashboard/catalog/items/7",
    )
    assert dash.get("/v1/items/7").json()["removed_at"] is None


def test_an_unknown_item_is_a_404_page_and_a_bad_id_a_422(dash: TestClient) -> None:
    token = _csrf(dash.get("/dashboard/catalog/items/0").text)
    for action in ("remove", "restore"):
        nope = dash.post(
            f"/dashboard/catalog/item/{action}", data={"item_id": "nope", "csrf_token": token}
        )
        assert nope.status_code == 404 and "Traceback" not in nope.text
        assert "&#39;nope&#39; is not in the catalog" in nope.text
        for bad in ("", "x" * 300, "a\x00b"):
            refused = dash.post(
                f"/dashboard/catalog/item/{action}", data={"item_id": bad, "csrf_token": token}
            )
            assert refused.status_code == 422 and "Traceback" not in refused.text, bad


def test_an_item_only_the_model_knows_has_no_button_and_cannot_be_removed(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(admin_token=TOKEN, default_model="ease")  # an empty catalog
    log_in(client, TOKEN)
    page = client.get("/dashboard/catalog/items/3").text
    assert "Only the model knows this item" in page and "/dashboard/catalog/item/" not in page
    forged = client.post(
        "/dashboard/catalog/item/remove", data={"item_id": "3", "csrf_token": _csrf(page)}
    )
    assert forged.status_code == 404 and 'data-testid="item-card"' in forged.text
    assert _problem(forged.text).startswith("item '3' is not in the catalog")


def test_a_database_failure_is_shown_on_the_page(
    dash: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("UPDATE", {}, Exception("database is down"))

    monkeypatch.setattr(catalog_api, "remove_items", unavailable)
    failed = _post(dash, "remove", "7")
    assert failed.status_code == 503 and "Traceback" not in failed.text
    assert "database is unavailable" in _problem(failed.text)
    assert 'data-testid="item-card"' in failed.text  # the page, with its Remove button
    monkeypatch.undo()

    assert dash.delete("/v1/items/7", headers=AUTH).status_code == 200
    monkeypatch.setattr(catalog_page, "restore_items", unavailable)
    failed = _post(dash, "restore", "7")
    assert failed.status_code == 503 and "database is unavailable" in _problem(failed.text)
    assert dash.get("/v1/items/7").json()["error"] == "unknown_item"  # still removed


def test_a_change_this_server_could_not_apply_is_not_shown_as_live(
    dash: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Remove and Restore commit, then sync this server's catalog; a failed sync was logged
    and swallowed, and the notice said "this server lists it nowhere now" (or "lists it
    again now") while it did not. The change is committed, so it is still a success; the
    notice says this server applies it at its next reload poll."""
    import app.catalog.sync as sync_module

    served = _user_list(dash, "u1")
    best = served[0]

    def down(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("SELECT", {}, Exception("connection lost"))

    monkeypatch.setattr(sync_module, "items_changed_since", down)
    removed = _post(dash, "remove", best)
    assert removed.status_code == 303
    notice = _notice(dash.get(removed.headers["location"]).text) or ""
    assert f"Item {best} removed from the catalog" in notice
    assert "lists it nowhere now" not in notice and "next reload poll" in notice
    assert "could not" in notice and best in _user_list(dash, "u1")  # as the notice says
    monkeypatch.undo()
    dash.app.state.catalog.sync_now()  # type: ignore[attr-defined]  # the next poll
    assert best not in _user_list(dash, "u1")

    monkeypatch.setattr(sync_module, "items_changed_since", down)
    restored = _post(dash, "restore", best)
    notice = _notice(dash.get(restored.headers["location"]).text) or ""
    assert f"Item {best} restored" in notice and "lists it again now" not in notice
    assert "could not" in notice and best not in _user_list(dash, "u1")
    monkeypatch.undo()
    dash.app.state.catalog.sync_now()  # type: ignore[attr-defined]
    assert _user_list(dash, "u1") == served
