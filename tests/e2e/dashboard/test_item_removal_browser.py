"""Removing an item from its dashboard page and restoring it, in headless Chromium against
``genrec serve`` over Postgres and Redis: the confirmation, the notice, the "removed" tag on
the page and in the Catalog search, the item gone from the API's answers and lists, and
back after Restore; no CSP refusal or script error on the way."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.e2e.conftest import Stack
from tests.e2e.dashboard.screenshots import shoot
from tests.e2e.dashboard.test_dashboard_browser import _login
from tests.e2e.dashboard.test_resilience_browser import console_problems

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TITLE = "Removal test item 4e1f"


def _served(api: httpx.Client, user: str) -> list[str]:
    answer = api.get(f"/v1/users/{user}/recommendations", params={"k": 10})
    assert answer.status_code == 200, answer.text
    return [item["item_id"] for item in answer.json()["items"]]


def test_remove_an_item_from_its_page_and_restore_it(stack: Stack, page: Page, shots: Path) -> None:
    stack.serve()
    api = stack.client()
    # The first item of user 1's list, in the catalog under a title of this test's own.
    item_id = _served(api, "1")[0]
    put = api.put(f"/v1/items/{item_id}", json={"title": TITLE, "attributes": {"k": "v"}})
    assert put.status_code in (200, 201), put.text
    try:
        with console_problems(page) as problems:
            _remove_and_restore(page, stack.base_url, api, item_id, shots)
        assert problems == []  # no CSP refusal, no script error
    finally:  # the session's database is shared: leave the item in the catalog
        api.put(f"/v1/items/{item_id}", json={"title": TITLE})


def _remove_and_restore(
    page: Page, base: str, api: httpx.Client, item_id: str, shots: Path
) -> None:
    _login(page, base)
    page.goto(f"{base}/dashboard/catalog/items/{item_id}")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(TITLE)
    remove = page.get_by_role("button", name="Remove from the catalog")

    # Remove asks first; dismissed, nothing is sent.
    asked: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    remove.click()
    page.wait_for_timeout(500)
    assert asked and TITLE in asked[0] and "Restore brings it back" in asked[0]
    assert api.get(f"/v1/items/{item_id}").status_code == 200

    page.once("dialog", lambda dialog: dialog.accept())
    remove.click()
    expect(page.get_by_role("status")).to_contain_text(f"Item {item_id} removed from the catalog")
    expect(page).to_have_url(f"{base}/dashboard/catalog/items/{item_id}")
    expect(heading.get_by_test_id("removed-tag")).to_have_text(re.compile(r"^removed 20"))
    expect(page.get_by_test_id("in-catalog")).to_contain_text("removed 20")
    expect(remove).to_have_count(0)
    shoot(page, shots, "item-removed")  # and it fits 1366 px
    gone = api.get(f"/v1/items/{item_id}")
    assert (gone.status_code, gone.json()["error"]) == (404, "unknown_item")
    assert item_id not in _served(api, "1")

    # The Catalog search still finds it, tagged.
    page.get_by_role("link", name="Catalog", exact=True).click()
    page.get_by_label("Item id or title").fill(TITLE)
    page.get_by_label("Item id or title").press("Enter")
    hits = page.get_by_test_id("hits")
    expect(hits.get_by_test_id("removed-tag")).to_have_count(1)
    shoot(page, shots, "catalog-removed")

    hits.get_by_role("link", name=item_id, exact=True).click()
    page.get_by_role("button", name="Restore").click()
    expect(page.get_by_role("status")).to_contain_text(f"Item {item_id} restored")
    expect(heading).to_have_text(TITLE)  # no tag
    expect(remove).to_be_visible()
    back = api.get(f"/v1/items/{item_id}").json()
    assert (back["title"], back["attributes"], back["removed_at"]) == (TITLE, {"k": "v"}, None)
    assert item_id in _served(api, "1")
