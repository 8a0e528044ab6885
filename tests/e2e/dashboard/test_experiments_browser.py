"""The Experiments page in headless Chromium against ``genrec serve`` over Postgres and Redis:
create an experiment from the form, send simulated traffic over HTTP (recommendations, and
clicks carrying their ``recommendation_id``), watch the numbers and charts update through
the polling (no reload), and stop it from the page."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine

from tests.e2e.conftest import Stack
from tests.e2e.dashboard.screenshots import shoot
from tests.e2e.dashboard.test_dashboard_browser import _login

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

USERS = 40


def _clear_experiments(database_url: str) -> None:
    """The session's database is shared: no other test's experiment may be running."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM experiments")
        conn.exec_driver_sql("DELETE FROM impressions WHERE experiment IS NOT NULL")
    engine.dispose()


def test_create_watch_traffic_and_stop_an_experiment(
    stack: Stack, page: Page, shots: Path, postgres_url: str
) -> None:
    _clear_experiments(postgres_url)
    stack.serve()
    base = stack.base_url
    _login(page, base)
    page.get_by_role("navigation", name="Dashboard").get_by_role(
        "link", name="Experiments", exact=True
    ).click()
    expect(page).to_have_url(f"{base}/dashboard/experiments")
    expect(page.get_by_test_id("experiments")).to_contain_text("No experiments yet")

    # A mistake first: the API's 422 message is shown on the page, nothing is started.
    page.get_by_label("Experiment name").fill("dash-ab")
    page.get_by_label("Variant 2 name").fill("vae")
    page.get_by_label("Variant 2 model").select_option("mult-dae")  # not in this store
    page.get_by_role("button", name="Start experiment").click()
    expect(page.get_by_role("alert")).to_have_text(
        "variant 'vae': unknown model 'mult-dae'; available: ease, mult-vae"
    )
    assert stack.client().get("/admin/experiments").json()["experiments"] == []

    # Then control = ease (production), treatment = mult-vae v1, equal weights.
    expect(page.get_by_label("Variant 1 model")).to_have_value("ease")
    page.get_by_label("Variant 2 model").select_option("mult-vae")
    page.get_by_label("Variant 2 version").fill("1")
    page.get_by_label("Attribution window (minutes)").fill("10")
    page.get_by_role("button", name="Start experiment").click()
    expect(page.get_by_role("status")).to_contain_text("Experiment dash-ab started")
    row = page.locator('tr[data-experiment="dash-ab"]')
    expect(row).to_have_attribute("data-status", "running")
    expect(page.get_by_test_id("impressions-control")).to_have_text("0")
    expect(page.get_by_test_id("impressions-vae")).to_have_text("0")
    page.evaluate("window.__notReloaded = true")

    # Simulated traffic in two waves (each seen by the polling before the next, so the
    # charts get points in more than one bucket): every user gets a list; every other user
    # clicks its first item, with the list's recommendation_id.
    public = httpx.Client(base_url=base, timeout=30)
    lists = {"control": 0, "vae": 0}
    clicks = {"control": 0, "vae": 0}
    for wave in (range(1, USERS // 2 + 1), range(USERS // 2 + 1, USERS + 1)):
        for user in wave:
            answer = public.get(f"/v1/users/{user}/recommendations", params={"k": 5})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["experiment"] == "dash-ab"
            lists[body["variant"]] += 1
            if user % 2 == 0:
                event = {
                    "user_id": str(user),
                    "item_id": body["items"][0]["item_id"],
                    "type": "click",
                    "recommendation_id": body["recommendation_id"],
                }
                assert public.post("/v1/interactions", json=event).status_code == 201
                clicks[body["variant"]] += 1
        # The polled panel shows them, without a page reload.
        for variant in ("control", "vae"):
            impressions = page.get_by_test_id(f"impressions-{variant}")
            expect(impressions).to_have_text(str(lists[variant]))
            expect(page.get_by_test_id(f"users-{variant}")).to_have_text(str(lists[variant]))
            expect(page.get_by_test_id(f"clicks-{variant}")).to_have_text(str(clicks[variant]))
        assert page.evaluate("window.__notReloaded") is True
    assert min(lists.values()) > 0  # 40 users: both variants get some
    expect(page.locator('[data-chart^="experiment-chart-"] canvas')).to_have_count(4)
    expect(page.get_by_test_id("srm")).to_contain_text("Sample ratio")
    shoot(page, shots, "experiments")

    # Stop it from the page (keyboard: focus the button, Enter).
    stop = page.get_by_role("button", name="Stop experiment dash-ab")
    stop.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Experiment dash-ab stopped")
    expect(page.locator('tr[data-experiment="dash-ab"]')).to_have_attribute(
        "data-status", "stopped"
    )
    expect(page.get_by_role("button", name="Stop experiment dash-ab")).to_have_count(0)
    assert stack.client().get("/admin/experiments/dash-ab").json()["status"] == "stopped"
    assert "experiment" not in public.get("/v1/users/1/recommendations").json()
