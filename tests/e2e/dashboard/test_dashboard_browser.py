"""The dashboard in a real headless browser against real server and worker processes.

Postgres + Redis + ``genrec serve`` as a subprocess (``tests/e2e/conftest.py``:
production ``ease`` v1 and ``mult-vae`` v1 trained on ML-100K users 1-200);
Chromium driven by Playwright. Every page visited is also photographed
(``screenshots.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import ADMIN_TOKEN, Stack
from tests.e2e.dashboard.screenshots import shoot

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

NAV = ["Overview", "Models", "Jobs", "Experiments", "Explore", "Catalog"]


def _at_login(base_url: str) -> re.Pattern[str]:
    """The login form, with or without the page to come back to (``?next=``)."""
    return re.compile(rf"{re.escape(base_url)}/dashboard/login(\?next=\S+)?$")


def _login(page: Page, base_url: str, token: str = ADMIN_TOKEN) -> None:
    page.goto(f"{base_url}/dashboard/login")
    field = page.get_by_label("Admin token")
    expect(field).to_have_attribute("type", "password")
    field.fill(token)
    field.press("Enter")  # the keyboard is enough


def test_login_logout_wrong_token_csrf_and_cookie(
    stack: Stack, page: Page, context: BrowserContext, shots: Path
) -> None:
    stack.serve()
    base = stack.base_url

    # Nothing on the dashboard without the session: pages send the browser to the login form.
    for path in [
        "/dashboard",
        "/dashboard/overview",
        "/dashboard/models",
        "/dashboard/jobs",
        "/dashboard/explore?user=1",
        "/dashboard/catalog?q=star",
    ]:
        page.goto(base + path)
        expect(page).to_have_url(_at_login(base))
    shoot(page, shots, "login")

    _login(page, base, "not-the-admin-token")
    expect(page.get_by_role("alert")).to_have_text("Wrong admin token.")
    page.goto(f"{base}/dashboard/overview")
    expect(page).to_have_url(_at_login(base))

    _login(page, base)
    expect(page).to_have_url(f"{base}/dashboard/overview")
    nav = page.get_by_role("navigation", name="Dashboard")
    for label in NAV:
        expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    # From the keyboard: the skip link first, then the navigation in order; Enter follows.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(nav.get_by_role("link", name="Models", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/dashboard/models")

    # The session cookie exists, is HttpOnly and SameSite=Strict, and scripts cannot see it.
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["genrec_dashboard"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert ADMIN_TOKEN not in session["value"]
    assert "genrec_dashboard" not in page.evaluate("document.cookie")

    # A state-changing request from the logged-in page, but without the CSRF token: refused.
    status = page.evaluate(
        """async () => (await fetch('/dashboard/models/ease/rollback',
                                    {method: 'POST', credentials: 'same-origin'})).status"""
    )
    assert status == 403
    assert stack.client().get("/admin/models").json()["models"][0]["aliases"] == {"production": "1"}

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(_at_login(base))
    page.goto(f"{base}/dashboard/models")
    expect(page).to_have_url(_at_login(base))
    # Logout revoked the session on the server: the cookie copied before it no longer works.
    context.add_cookies([session])
    page.goto(f"{base}/dashboard/models")
    expect(page).to_have_url(_at_login(base))
    assert ADMIN_TOKEN not in stack.all_output()


def _import_titles(stack: Stack, data_dir: Path, tmp_path: Path) -> None:
    """ML-100K's movie titles into the catalog with ``genrec items import`` (the seeded
    versions were trained on a CSV without titles, as a deployment's own data may be)."""
    catalog = tmp_path / "ml100k-items.jsonl"
    with catalog.open("w") as out:
        for line in (data_dir / "ml-100k" / "u.item").read_text(encoding="latin-1").splitlines():
            fields = line.split("|")
            record = {
                "item_id": fields[0],
                "title": fields[1],
                "attributes": {"released": fields[2]},
            }
            out.write(json.dumps(record) + "\n")
    importer = stack.start("items-import", "items", "import", str(catalog))
    assert importer.wait(timeout=120) == 0, importer.output()[-2000:]


def test_operator_workflow_overview_retrain_promote_explore_docs(
    stack: Stack, page: Page, shots: Path, data_dir: Path, tmp_path: Path
) -> None:
    stack.serve()
    _import_titles(stack, data_dir, tmp_path)
    base = stack.base_url
    public = httpx.Client(base_url=base, timeout=30)
    _login(page, base)

    # Overview: a request made just before shows up in the endpoint table.
    assert public.get("/v1/users/1/recommendations", params={"k": 5}).status_code == 200
    page.goto(f"{base}/dashboard/overview")
    row = (
        page.get_by_test_id("endpoints")
        .get_by_role("row")
        .filter(has_text="/v1/users/{user_id}/recommendations")
    )
    expect(row).to_be_visible()
    expect(page.get_by_test_id("database-health")).to_have_text("up")
    expect(page.get_by_test_id("cache-health")).to_have_text("up")
    assert public.get("/v1/items/1/similar").status_code == 200
    expect(page.locator('[data-chart="rate-chart"] canvas')).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("endpoints")).to_contain_text("/v1/items/{item_id}/similar")
    shoot(page, shots, "overview")

    # Jobs: start a retrain from the form; a worker runs it; the list shows it reach done.
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_label("Model", exact=True).select_option("ease")
    page.get_by_label("Promote").select_option("never")
    page.get_by_role("button", name="Start retrain").click()
    notice = page.get_by_role("status")
    expect(notice).to_contain_text("queued")
    job_id = re.search(r"Job (\d+) queued", notice.inner_text())
    assert job_id
    job_row = page.locator(f'tr[data-job-id="{job_id.group(1)}"]')
    expect(job_row).to_have_attribute("data-status", "queued")
    worker = stack.worker("--once")
    assert worker.wait(timeout=180) == 0, worker.output()[-4000:]
    expect(job_row).to_have_attribute("data-status", "succeeded", timeout=15_000)  # htmx poll
    job_row.get_by_text("Log and fields").click()
    expect(job_row.locator("pre.log")).to_contain_text("gate: ")  # loaded once opened
    shoot(page, shots, "jobs")

    # Models: v2 exists, not promoted; promote it and watch the served version switch.
    page.get_by_role("link", name="Models", exact=True).click()
    served = page.locator('.served-version[data-model="ease"]')
    expect(served).to_have_text("v1")
    page.get_by_label("Version of ease to promote").select_option("2")
    ease = page.locator("#model-ease")
    ease.get_by_role("button", name="Promote").click()
    expect(page.get_by_role("status")).to_contain_text("production now points at v2")
    expect(page.locator('.served-version[data-model="ease"]')).to_have_text("v2", timeout=15_000)
    assert public.get("/v1/users/1/recommendations").json()["version"] == "2"
    shoot(page, shots, "models")
    page.goto(f"{base}/dashboard/models/mult-vae/versions/1")
    expect(page.locator("[data-chart] canvas").first).to_be_visible()  # uPlot drew the curve
    shoot(page, shots, "version")

    # Explore: a known user's history with titles beside each model's list; then a new user.
    page.get_by_role("link", name="Explore", exact=True).click()
    page.get_by_label("User id").fill("1")
    page.get_by_label("User id").press("Enter")
    history = page.get_by_test_id("history")
    expect(history.locator("li").first).to_be_visible()
    expect(history).to_contain_text("Toy Story (1995)")  # ML-100K user 1 rated item 1
    for model in ("ease", "mult-vae"):
        lst = page.get_by_test_id(f"list-{model}")
        expect(lst.locator("li")).to_have_count(10)
        expect(lst).not_to_contain_text("popularity fallback")
    expect(page.get_by_test_id("list-ease")).to_contain_text("v2")
    shoot(page, shots, "explore")
    page.get_by_label("User id").fill("someone-new-0c9d")
    page.get_by_label("User id").press("Enter")
    expect(page.get_by_test_id("history")).to_contain_text("No history: a new user")
    expect(page.get_by_test_id("list-ease")).to_contain_text("popularity fallback")
    expect(page.get_by_test_id("list-ease").locator("li")).to_have_count(10)

    # Catalog: search by title, open the item's card.
    page.get_by_role("link", name="Catalog", exact=True).click()
    page.get_by_label("Item id or title").fill("toy story")
    page.get_by_label("Item id or title").press("Enter")
    expect(page.get_by_test_id("hits")).to_contain_text("Toy Story (1995)")
    shoot(page, shots, "catalog")
    page.get_by_test_id("hits").get_by_role("link", name="1", exact=True).click()
    card = page.get_by_test_id("item-card")
    expect(card).to_contain_text("Toy Story")
    expect(card).to_contain_text("Interactions in training data")
    shoot(page, shots, "item")

    # /docs renders Swagger UI from local files (it was blank without internet access).
    page.goto(f"{base}/docs")
    expect(page.locator(".swagger-ui .title").first).to_contain_text("genrec")
    expect(page.locator(".opblock").first).to_be_visible()
    shoot(page, shots, "docs", full_page=False)
