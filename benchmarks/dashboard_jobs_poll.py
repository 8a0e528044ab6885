"""Bytes of one poll of the dashboard's Jobs list (``/dashboard/jobs/list``, every 2 s).

Fills a scratch SQLite database with ``--jobs`` finished jobs (the list shows the
newest 30), each with a full log tail (80 lines like a worker's), logs a TestClient
in and prints the size of the fragment a poll gets: with every job's details closed,
with one open and with all open (``open=``), as the page asks for them.

    PYTHONPATH=$PWD python benchmarks/dashboard_jobs_poll.py

Before the poll asked only for the open jobs' logs, every poll carried every listed
job's log: the "all open" figure. Run against a checkout without ``open=`` (which
ignores the parameter), all three figures are that size.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.db import session_scope
from app.db_models import RetrainJob
from app.main import create_app

TOKEN = "bench-dashboard-token"
LOG_LINES = 80
#: A line as a worker's epoch report reads (about 60 characters).
LINE = "07:{m:02d}:{s:02d}Z epoch {e}/80: loss 701.7695, ndcg@10 0.02182 (3.1 s)"


def _fill(client: TestClient, jobs: int) -> list[int]:
    start = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)
    with session_scope(client.app.state.services.sessions) as session:  # type: ignore[attr-defined]
        rows = [
            RetrainJob(
                kind="retrain",
                model="ease",
                params={"epochs": LOG_LINES},
                data="log+base",
                promote="auto",
                trigger="api",
                status="succeeded",
                attempts=1,
                max_attempts=3,
                progress={"phase": "succeeded", "epoch": LOG_LINES, "epochs": LOG_LINES},
                result_version=str(n + 2),
                promoted=False,
                gate={"promote": False, "reason": "ndcg@10 0.0218 < production's 0.0231"},
                log_tail="\n".join(
                    LINE.format(m=i // 60, s=i % 60, e=i + 1) for i in range(LOG_LINES)
                ),
                created_at=start + timedelta(minutes=n),
                updated_at=start + timedelta(minutes=n, seconds=30),
            )
            for n in range(jobs)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def _log_in(client: TestClient) -> None:
    nonce = re.search(r'name="nonce" value="([^"]+)"', client.get("/dashboard/login").text)
    assert nonce, "no login form"
    client.post("/dashboard/login", data={"token": TOKEN, "nonce": nonce.group(1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            store_dir=Path(tmp) / "store",
            database_url=f"sqlite:///{tmp}/genrec.db",
            redis_url=None,
            admin_token=TOKEN,
            access_log=False,
        )
        with TestClient(create_app(settings)) as client:
            ids = _fill(client, args.jobs)
            _log_in(client)
            shown = ids[-30:]
            for label, query in (
                ("all details closed", ""),
                ("one open", f"?open={shown[-1]}"),
                ("all open", "?open=" + ",".join(map(str, shown))),
            ):
                answer = client.get(f"/dashboard/jobs/list{query}", headers={"HX-Request": "true"})
                assert answer.status_code == 200, answer.text[:500]
                print(f"{label:>20}: {len(answer.content):>7,} bytes per poll")


if __name__ == "__main__":
    main()
