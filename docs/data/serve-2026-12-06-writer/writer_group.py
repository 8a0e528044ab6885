"""The interaction writer's cost per one-request group (two rows, a new user), in process.

Calls ``InteractionLogger._write_group`` (what the group-commit thread runs) 300 times
after 50 warm-up groups and prints the process CPU and the wall time per group, and the
statements Postgres logged per group over 3 more (``log_statement = 'all'`` on the
database, read from the server's log file). Run from the repository root with the code
to measure first on ``PYTHONPATH``; WG_URL is an empty Postgres database (through
``delay_proxy.py`` to put the database a round trip away):

    WG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/genrec_writer \\
        GENREC_STORE_DIR=/tmp/bench-store PYTHONPATH=$PWD .venv/bin/python \\
        docs/data/serve-2026-12-06-writer/writer_group.py
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from app.core.config import Settings
from app.core.db import upgrade_database
from app.core.metrics import Metrics
from app.main import build_services
from app.repository import NewInteraction

PG_LOG = os.environ.get("WG_PG_LOG", "/var/log/postgresql/postgresql-15-main.log")
url = os.environ["WG_URL"]
upgrade_database(url)
writer = build_services(Settings(database_url=url), Metrics()).interactions


def one_group(n: int) -> None:
    now = datetime.now(UTC)
    rows = [NewInteraction(f"w-{n}", str(n % 900 + 1), 4.0, now),
            NewInteraction(f"w-{n}", str((n + 500) % 900 + 1), 4.0, now)]  # fmt: skip
    writer._write_group([rows])


for n in range(50):
    one_group(n)
cpu, wall = time.process_time(), time.perf_counter()
for n in range(50, 350):
    one_group(n)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
logged = 0
if os.path.exists(PG_LOG):
    with open(PG_LOG) as log:
        log.seek(0, 2)
        for n in range(350, 353):
            one_group(n)
        time.sleep(0.5)
        logged = sum("statement:" in line or "execute " in line for line in log)
print(
    f"per one-request group: CPU {cpu / 300 * 1e3:.2f} ms, wall {wall / 300 * 1e3:.2f} ms, "
    f"statements {logged / 3:.1f}"
)
