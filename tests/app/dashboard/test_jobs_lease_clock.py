"""The Jobs page judges a lease by the database's clock, as workers do: a server whose
clock runs ahead must not call a live job's worker stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core.db import session_scope
from app.dashboard.pages import jobs as jobs_page
from tests.app.conftest import ClientFactory
from tests.app.dashboard.job_rows import job_row
from tests.app.dashboard.login import log_in

TOKEN = "dash-lease-clock-token-5e1a"


class _HalfAnHourAhead(datetime):
    """``datetime`` whose ``now`` is 30 minutes ahead: the server's clock, unsynchronised."""

    @classmethod
    def now(cls, tz: object = None) -> _HalfAnHourAhead:  # type: ignore[override]
        real = datetime.now(UTC) + timedelta(minutes=30)
        return cls.fromtimestamp(real.timestamp(), tz=UTC)


def test_a_live_lease_is_not_called_stalled_by_a_server_clock_ahead(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(admin_token=TOKEN)
    log_in(client, TOKEN)
    sessions = client.app.state.services.sessions  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with session_scope(sessions) as session:
        session.add(
            job_row(
                status="running",
                worker_id="w",
                attempts=1,
                lease_expires_at=now + timedelta(minutes=2),  # renewed a moment ago
            )
        )
    monkeypatch.setattr(jobs_page, "datetime", _HalfAnHourAhead)
    html = client.get("/dashboard/jobs/list").text
    assert 'data-job-id="1"' in html
    assert "worker stopped" not in html
