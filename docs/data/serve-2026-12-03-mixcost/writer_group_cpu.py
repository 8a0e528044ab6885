"""CPU of the interaction writer per one-request group (two rows), in process, on SQLite.

Calls ``InteractionLogger._write_group`` (what the group-commit thread runs) 300 times
with one request's two rows for a new user each time, after 50 warm-up groups, and
prints the process CPU per group. Run from the repository root with the code to
measure first on ``PYTHONPATH`` (a worktree of an older commit, or this tree):

    GENREC_STORE_DIR=/tmp/bench-store PYTHONPATH=$PWD .venv/bin/python \
        docs/data/serve-2026-12-03-mixcost/writer_group_cpu.py

WG_URL (a database URL, e.g. an empty Postgres database) and WG_REDIS (a Redis URL) replace
the SQLite file and the in-process cache (docs/data/serve-2026-12-04-cache/writer/run.sh).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from app.core.config import Settings
from app.core.db import upgrade_database
from app.core.metrics import Metrics
from app.main import build_services
from app.repository import NewInteraction

url = os.environ.get("WG_URL") or f"sqlite:///{Path(tempfile.mkdtemp()) / 'writer.db'}"
upgrade_database(url)
writer = build_services(
    Settings(database_url=url, redis_url=os.environ.get("WG_REDIS")), Metrics()
).interactions


def one_group(n: int) -> None:
    now = datetime.now(UTC)
    rows = [NewInteraction(f"w-{n}", str(n % 900 + 1), 4.0, now),
            NewInteraction(f"w-{n}", str((n + 500) % 900 + 1), 4.0, now)]  # fmt: skip
    writer._write_group([rows])


for n in range(50):
    one_group(n)
started = time.process_time()
for n in range(50, 350):
    one_group(n)
print(f"writer CPU per one-request group: {(time.process_time() - started) / 300 * 1e3:.2f} ms")
