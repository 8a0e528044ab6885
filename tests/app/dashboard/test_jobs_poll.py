"""The Jobs list polls every 2 s: each poll carries a job's log tail only when its
"Log and fields" are open (``open=``), not all 30 jobs' 80 lines every time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from app.core.db import session_scope
from tests.app.conftest import ClientFactory
from tests.app.dashboard.job_rows import job_row
from tests.app.dashboard.login import log_in

TOKEN = "dash-poll-token-3b90"
NOW = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)


@pytest.fixture
def dash(make_client: ClientFactory) -> TestClient:
    client = make_client(admin_token=TOKEN, default_model="ease")
    log_in(client, TOKEN)
    with session_scope(client.app.state.services.sessions) as session:  # type: ignore[attr-defined]
        for n in range(1, 4):
            session.add(
                job_row(
                    status="succeeded",
                    attempts=1,
                    log_tail="\n".join(f"07:00:{i:02d}Z job{n} line {i}" for i in range(80)),
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    return client


def _row(html: str, job_id: int) -> str:
    return html.split(f'data-job-id="{job_id}"')[1].split("</tr>")[0]


def test_a_poll_sends_no_log_unless_asked(dash: TestClient) -> None:
    listed = dash.get("/dashboard/jobs/list", headers={"HX-Request": "true"})
    assert listed.status_code == 200
    assert "line 79" not in listed.text
    for job_id in (1, 2, 3):
        assert f'data-job-id="{job_id}"' in listed.text
        details = re.search(r"<details[^>]*>", _row(listed.text, job_id))
        assert details and " open" not in details[0] and 'data-job-log="' in details[0]
    assert "line 0" not in dash.get("/dashboard/jobs").text  # the page as first rendered


def test_a_poll_sends_the_logs_of_the_open_details(dash: TestClient) -> None:
    listed = dash.get("/dashboard/jobs/list?open=1,3").text
    for job_id in (1, 3):
        row = _row(listed, job_id)
        assert f"job{job_id} line 0" in row and f"job{job_id} line 79" in row
        assert re.search(r"<details[^>]* open[ >]", row)  # stays open across the swap
    assert "job2 line" not in listed
    assert "job2 line" not in dash.get("/dashboard/jobs/list?open=99").text  # no such job


def test_a_malformed_open_list_is_refused(dash: TestClient) -> None:
    answer = dash.get("/dashboard/jobs/list?open=1;drop", headers={"HX-Request": "true"})
    assert answer.status_code == 422 and "open" in answer.text
