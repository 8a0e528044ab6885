"""Shared steps of the duplicate-job tests (retrain and tune): identical requests fired
at once, and a scheduled job in flight when an identical request arrives."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import make_engine, make_sessionmaker
from app.db_models import RetrainJob
from app.retrain import lifecycle
from tests.app.conftest import ClientFactory


def listed_jobs(admin: TestClient, auth: dict[str, str]) -> list[dict[str, object]]:
    jobs: list[dict[str, object]] = admin.get("/admin/jobs", headers=auth).json()["jobs"]
    return jobs


def enqueue_at_once(
    enqueue: Callable[[], RetrainJob], n: int = 6
) -> tuple[list[int], list[lifecycle.DuplicateJob], list[object]]:
    """``enqueue`` in ``n`` threads released together: the ids queued, the refusals, and
    every outcome (for the assertion message)."""
    start = threading.Barrier(n)
    outcomes: list[object] = []

    def post() -> None:
        start.wait()
        try:
            outcomes.append(enqueue().id)
        except lifecycle.DuplicateJob as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=post) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    created = [o for o in outcomes if isinstance(o, int)]
    refused = [o for o in outcomes if isinstance(o, lifecycle.DuplicateJob)]
    return created, refused, outcomes


def scheduled_job(
    make_client: ClientFactory,
    tmp_path: Path,
    token: str,
    schedule: Callable[[sessionmaker[Session]], RetrainJob | None],
) -> tuple[TestClient, RetrainJob | None]:
    """An admin client on a database of its own, and the job ``schedule`` queued there."""
    url = f"sqlite:///{tmp_path}/scheduled.db"
    admin = make_client(admin_token=token, database_url=url)
    engine = make_engine(url)
    try:
        return admin, schedule(make_sessionmaker(engine))
    finally:
        engine.dispose()
