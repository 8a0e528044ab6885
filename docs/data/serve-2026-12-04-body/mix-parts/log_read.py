"""One user's batch log read (``repository.users_interactions``), through a ``Session`` as
``LogReader.read_many`` does and on a plain ``Connection``: microseconds per read, SQLite.

    GENREC_STORE_DIR=/tmp/bench-store .venv/bin/python log_read.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import timeit
from datetime import UTC, datetime


def main() -> None:
    os.environ.setdefault("GENREC_STORE_DIR", "/tmp/bench-store")
    os.environ.update(
        GENREC_DATABASE_URL=f"sqlite:///{tempfile.mkdtemp()}/genrec.db", GENREC_ACCESS_LOG="false"
    )
    from app.core.db import session_scope
    from app.main import create_app
    from app.repository import _BATCH_LOG, users_interactions

    app = create_app()
    cutoff = datetime(2000, 1, 1, tzinfo=UTC)

    async def run() -> None:
        async with app.router.lifespan_context(app):
            services = app.state.services

            def via_session() -> None:
                with session_scope(services.sessions) as session:
                    users_interactions(session, ["5"], cutoff, [])

            def via_connection() -> None:
                with services.engine.connect() as connection:
                    params = {"recent": ["5"], "whole": [], "cutoff": cutoff}
                    list(connection.execute(_BATCH_LOG[True], params))

            for read in (via_session, via_connection, via_session, via_connection):
                n = 3000
                print(f"{read.__name__}: {timeit.timeit(read, number=n) / n * 1e6:.0f} us")

    asyncio.run(run())


if __name__ == "__main__":
    main()
