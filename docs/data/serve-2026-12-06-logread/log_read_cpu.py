"""Thread CPU of one batch log read on Postgres: SQLAlchemy Core (``users_interactions``, as
serving runs it) against the same compiled statement on the raw psycopg connection.

Known users with nothing logged after the cutoff (a batch's usual case), the read engine's
autocommit connection, 1,000 reads after 200 warm-up ones, batches of 1 and 16 users:

    psql -U postgres -h 127.0.0.1 -c "create database genrec_lr"
    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-06-logread/log_read_cpu.py
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.dialects import postgresql

from app.core.db import make_engine, make_read_engine, upgrade_database
from app.repository import _BATCH_LOG_LATERAL, users_interactions

url = os.environ.get("LR_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/genrec_lr")
upgrade_database(url)
reads = make_read_engine(make_engine(url))
after = datetime.now(UTC) - timedelta(days=1)
sql = str(_BATCH_LOG_LATERAL[True].compile(dialect=postgresql.psycopg.dialect()))  # type: ignore[attr-defined]
for size in (1, 16):
    users = [str(u) for u in range(1, size + 1)]
    with reads.connect() as conn:
        for _ in range(200):
            users_interactions(conn, users, after)
        started = time.thread_time()
        for _ in range(1000):
            users_interactions(conn, users, after)
        core = (time.thread_time() - started) / 1000 * 1e6
        raw = conn.connection.dbapi_connection
        assert raw is not None
        params = {"users": users, "whole": [False] * size, "cutoff": after}
        for _ in range(200):
            with raw.cursor() as cur:
                cur.execute(sql, params)
                cur.fetchall()
        started = time.thread_time()
        for _ in range(1000):
            with raw.cursor() as cur:
                cur.execute(sql, params)
                cur.fetchall()
        plain = (time.thread_time() - started) / 1000 * 1e6
    print(
        f"batch of {size}: SQLAlchemy Core {core:.0f} us, raw psycopg {plain:.0f} us of thread CPU"
    )
