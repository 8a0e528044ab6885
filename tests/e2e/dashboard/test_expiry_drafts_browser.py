"""A form being filled in when the session ends is not lost: after logging in again the
operator is back on the page with what they typed (not sent), and sends it with the new
session's CSRF token. Sessions of about 11 s; the same stack as the other browser tests,
one server for both tests (each logs in on a page of its own)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from app.dashboard.auth import SESSION_COOKIE
from tests.e2e.conftest import ADMIN_TOKEN, Stack
from tests.e2e.dashboard.test_dashboard_browser import _at_login, _login
from tests.e2e.dashboard.test_experiments_browser import _clear_experiments

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SESSION_HOURS = "0.003"  # 10.8 s (the cookie's Max-Age: 10 s)


@pytest.fixture(scope="module")
def stack(module_stack: Stack, postgres_url: str) -> Stack:
    """This module's server, with sessions of ``SESSION_HOURS``, started with no other
    test's experiment in the shared database."""
    _clear_experiments(postgres_url)
    module_stack.env["GENREC_DASHBOARD_SESSION_HOURS"] = SESSION_HOURS
    module_stack.serve()
    return module_stack


def _until_the_session_expires(page: Page) -> None:
    """Wait until the browser has dropped the session cookie (its Max-Age is the session's
    length), rather than a fixed 11.5 s from the moment the form was filled in: from then
    on the page's requests are sent as after expiry."""
    deadline = time.monotonic() + 60
    while SESSION_COOKIE in {cookie["name"] for cookie in page.context.cookies()}:
        assert time.monotonic() < deadline, "the session cookie outlived its Max-Age"
        page.wait_for_timeout(200)


def _log_in_again(page: Page) -> None:
    expect(page.get_by_test_id("draft-kept")).to_be_visible()
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_label("Admin token").press("Enter")


def test_a_form_sent_after_expiry_comes_back_filled_in(
    stack: Stack, page: Page, postgres_url: str
) -> None:
    _clear_experiments(postgres_url)
    base = stack.base_url
    try:
        _login(page, base)
        page.goto(f"{base}/dashboard/experiments")  # polls nothing without an experiment
        page.get_by_label("Experiment name").fill("after-expiry")
        page.get_by_label("Attribution window (minutes)").fill("15")
        page.get_by_label("Variant 2 name").fill("vae")
        page.get_by_label("Variant 2 model").select_option("mult-vae")
        _until_the_session_expires(page)
        page.get_by_role("button", name="Start experiment").click()
        expect(page).to_have_url(_at_login(base))
        assert stack.client().get("/admin/experiments").json()["experiments"] == []
        _log_in_again(page)
        expect(page).to_have_url(f"{base}/dashboard/experiments")
        expect(page.get_by_test_id("draft-restored")).to_contain_text("was not sent")
        expect(page.get_by_label("Experiment name")).to_have_value("after-expiry")
        expect(page.get_by_label("Attribution window (minutes)")).to_have_value("15")
        expect(page.get_by_label("Variant 2 name")).to_have_value("vae")
        expect(page.get_by_label("Variant 2 model")).to_have_value("mult-vae")
        page.get_by_role("button", name="Start experiment").click()  # the new CSRF token
        expect(page.get_by_role("status")).to_contain_text("Experiment after-expiry started")
        names = [e["name"] for e in stack.client().get("/admin/experiments").json()["experiments"]]
        assert names == ["after-expiry"]
        # Shown once: the next visit of the page has the form as the server renders it.
        page.goto(f"{base}/dashboard/experiments")
        expect(page.get_by_label("Experiment name")).to_have_value("")
        expect(page.get_by_test_id("draft-restored")).to_have_count(0)
        stored = page.evaluate("Object.keys(sessionStorage)")
        assert not [key for key in stored if "draft" in key]
    finally:
        _clear_experiments(postgres_url)


def test_a_form_the_poll_left_for_the_login_comes_back_filled_in(stack: Stack, page: Page) -> None:
    """The Jobs page polls: at expiry the poll itself goes to the login form, typed or not."""
    base = stack.base_url
    _login(page, base)
    page.goto(f"{base}/dashboard/jobs")
    page.get_by_label("Promote").select_option("never")
    page.get_by_label("Hyper-parameters (JSON)").fill('{"l2": 250}')
    expect(page).to_have_url(_at_login(base), timeout=30_000)
    stored = page.evaluate("JSON.stringify(sessionStorage)")
    assert "250" in stored and "csrf" not in stored.lower()  # no token is ever kept
    _log_in_again(page)
    expect(page).to_have_url(f"{base}/dashboard/jobs")
    expect(page.get_by_label("Hyper-parameters (JSON)")).to_have_value('{"l2": 250}')
    expect(page.get_by_label("Promote")).to_have_value("never")
    expect(page.get_by_test_id("draft-restored")).to_be_visible()
