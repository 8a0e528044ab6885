"""The Jobs list in Chromium: its 2-second poll carries a job's log only while the operator
has that job's "Log and fields" open, and opening one shows its log at once.

Same stack as ``test_dashboard_browser.py``; the jobs (finished, with an 80-line log) are
written straight into the stack's Postgres, as a worker would have left them. The page's
timers run on Playwright's clock: the test runs the 2-second poll timer forward instead of
waiting it out (time otherwise flows as usual), and each poll is a real request.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, Response, expect

from app.core.db import make_engine, make_sessionmaker, session_scope
from app.db_models import RetrainJob
from tests.e2e.conftest import Stack
from tests.e2e.dashboard.test_dashboard_browser import _login

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _finished_jobs(database_url: str, count: int) -> list[int]:
    """``count`` succeeded jobs, each with an 80-line log naming the job in every line."""
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            rows = [
                RetrainJob(
                    kind="retrain",
                    model="ease",
                    params={},
                    data="log",
                    promote="never",
                    trigger="api",
                    status="succeeded",
                    attempts=1,
                    max_attempts=3,
                    log_tail="\n".join(
                        f"07:00:{i % 60:02d}Z logged-{n} line {i}" for i in range(80)
                    ),
                    created_at=now,
                    updated_at=now,
                )
                for n in range(count)
            ]
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]
    finally:
        engine.dispose()


def test_the_poll_carries_only_the_open_jobs_log(
    stack: Stack, page: Page, postgres_url: str
) -> None:
    stack.serve()
    base = stack.base_url
    first, second = _finished_jobs(postgres_url, 2)
    responses: list[Response] = []

    def on_response(response: Response) -> None:
        if "/dashboard/jobs/list" in response.url:
            responses.append(response)

    def polls() -> list[tuple[str, str]]:
        """The polls answered since the last call: address and body."""
        seen = [(response.url, response.text()) for response in responses]
        responses.clear()
        return seen

    def two_more_polls() -> list[tuple[str, str]]:
        """``polls()`` once the poll timer has fired twice more (run forward 2 s at a time,
        each poll's answer awaited), where the test used to wait 4.5 s of wall clock."""
        for _ in range(2):
            with page.expect_response(lambda response: "/dashboard/jobs/list" in response.url):
                page.clock.run_for(2_000)
        return polls()

    _login(page, base)
    page.on("response", on_response)
    page.clock.install()
    page.goto(f"{base}/dashboard/jobs")
    row = page.locator(f'tr[data-job-id="{first}"]')
    expect(row).to_be_visible()
    closed = two_more_polls()  # two polls with every job's details closed
    assert len(closed) >= 2
    assert not [url for url, body in closed if "open=" in url or "line 79" in body]

    row.get_by_text("Log and fields").click()  # polls at once, asking for this job's log
    log = row.locator("pre.log")
    expect(log).to_contain_text("logged-0 line 79", timeout=1_500)  # not the next 2-s poll
    expect(log).to_contain_text("logged-0 line 0")
    polls()
    opened = two_more_polls()
    assert len(opened) >= 2
    for url, body in opened:
        assert re.search(rf"[?&]open={first}(&|$)", url), url
        assert "logged-0 line 79" in body and "logged-1 line" not in body
    expect(row.locator("details")).to_have_attribute("open", "")  # stayed open over the swaps
    expect(log).to_contain_text("logged-0 line 79")
    expect(page.locator(f'tr[data-job-id="{second}"] pre.log')).not_to_contain_text("line")

    row.get_by_text("Log and fields").click()  # closed: the polls stop asking
    page.wait_for_timeout(500)
    polls()
    again = two_more_polls()
    assert again and not [url for url, _ in again if "open=" in url]
