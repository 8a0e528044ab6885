"""Expire job leases by the database's clock, which is what leases run on (no sleeping)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.core.db_time import database_now
from app.db_models import RetrainJob


def expire_leases(sessions: sessionmaker[Session]) -> None:
    """End every running job's lease an hour ago by the database's clock: what waiting out
    ``GENREC_JOB_LEASE_S`` after its worker died would do (takeover, sweep), at once."""
    with session_scope(sessions) as session:
        session.execute(
            update(RetrainJob)
            .where(RetrainJob.status == "running", RetrainJob.lease_expires_at.is_not(None))
            .values(lease_expires_at=database_now(-3600.0))
        )
