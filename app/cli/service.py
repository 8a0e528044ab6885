"""``genrec serve``, ``worker`` and ``migrate``: the commands that run the online service."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import console, fail, out, settings


def serve(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
) -> None:
    """Run the HTTP API (settings from GENREC_* environment variables / .env)."""
    import uvicorn

    from training.device import DeviceError, resolve_device

    config = settings()
    # What the app's startup would refuse is refused here, as one line: inside uvicorn it
    # is a traceback in each worker followed by "Application startup failed".
    try:
        resolve_device(config.device)
    except DeviceError as exc:
        raise fail(f"GENREC_DEVICE: {exc}") from None
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=config.log_level.lower(),
        timeout_graceful_shutdown=30,
    )


def worker(
    once: Annotated[
        bool, typer.Option(help="run at most one job (if one is claimable), then exit")
    ] = False,
    poll_interval: Annotated[
        float | None,
        typer.Option(help="seconds between looks for a job (default GENREC_JOB_POLL_INTERVAL_S)"),
    ] = None,
) -> None:
    """Run retrain and tune jobs from the database (any number of workers, on any machine);
    an idle worker joins the search of a running tune job."""
    from app.worker import run_worker

    ran = run_worker(settings(), once=once, poll_interval=poll_interval)
    console.print(f"worker stopped after {ran} job(s)")


def migrate() -> None:
    """Apply the database migrations (Alembic upgrade head)."""
    from app.core.db import upgrade_database

    upgrade_database(settings().database_url)
    out.print("database is at the latest migration")
