"""``genrec serve``, ``worker`` and ``migrate``: the commands that run the online service."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import console, fail, out, settings
from training.run_limits import MAX_PROCESSES

if TYPE_CHECKING:
    from app.core.config import Settings


def serve(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=MAX_PROCESSES, help="uvicorn worker processes")
    ] = 1,
    root_path: Annotated[
        str,
        typer.Option(
            help="the path prefix a reverse proxy serves the app under and strips before "
            "passing requests on (e.g. /genrec); the dashboard writes its addresses under it"
        ),
    ] = "",
) -> None:
    """Run the HTTP API (settings from GENREC_* environment variables / .env)."""
    import uvicorn

    # What the app's startup would refuse is refused here, as one line: inside uvicorn it
    # is a traceback in each worker followed by "Application startup failed".
    _check_root_path(root_path)
    config = _settings_and_device()
    _check_bindable(host, port, workers)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        root_path=root_path,
        log_level=config.log_level.lower(),
        timeout_graceful_shutdown=30,
    )


#: ``/segment`` once or more, each of URL path characters that need no escaping.
_ROOT_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+")


def _check_root_path(root_path: str) -> None:
    """Refuse, as one line, a root path that is not a plain path prefix.

    uvicorn takes any text and puts it before every request's path: ``genrec`` (no
    leading ``/``) would make the dashboard's addresses relative (``genrec/dashboard/jobs``,
    wrong from any page but the first), a space or ``?`` could not be in a URL as
    written, and ``/genrec/`` puts ``/genrec//dashboard/...`` in the scope's paths.
    Refused rather than repaired: the proxy in front must agree on the prefix."""
    if root_path and not _ROOT_PATH.fullmatch(root_path):
        raise fail(
            f"--root-path must be a path such as /genrec (starting with /, no trailing /, "
            f"no spaces, query or %-escapes), got {root_path!r}"
        )


def _check_bindable(host: str, port: int, workers: int = 1) -> None:
    """Refuse, as one line, an address the server could not listen on (a port in use, an
    address not of this machine, a privileged port), by binding it as uvicorn will and
    letting it go.

    Why here: uvicorn binds only after the app's startup (every model loaded, with one
    worker), then logs the error in its own format and exits 1. The probe binds what
    uvicorn binds, with the same socket options (``_uvicorn_binds``), so it refuses only
    what uvicorn would: a port in TIME_WAIT is not refused (``SO_REUSEADDR``), nor
    ``--host ::`` beside a server on ``0.0.0.0`` (one worker listens IPv6-only), nor
    ``--host ''`` (every interface). Another process can still take the port between
    this check and uvicorn's bind; that rare race ends as before, in uvicorn's own lines.
    """
    import errno
    import socket

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        binds = _uvicorn_binds(host, port, workers)
    except socket.gaierror as exc:
        raise fail(f"cannot listen on {where}: unknown host {host!r} ({exc.strerror})") from None
    for family, kind, proto, address in binds:
        try:
            probe = socket.socket(family, kind, proto)
        except OSError:
            continue  # a family this machine lacks: asyncio skips it too
        try:
            with probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and workers == 1:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise fail(
                    f"cannot listen on {where}: address already in use (another server "
                    "running there?); pick another --port or stop it"
                ) from None
            raise fail(f"cannot listen on {where}: {exc.strerror or exc}") from None


def _uvicorn_binds(host: str, port: int, workers: int) -> list[tuple[int, int, int, Any]]:
    """(family, type, proto, address) of each socket uvicorn binds for ``host``.

    One worker: asyncio's ``create_server(host=...)``, a socket per address the host
    resolves to (``''``: every interface), IPv6 ones IPv6-only. Several: uvicorn's
    ``Config.bind_socket``, one socket, IPv6 when the host has a ``:``, dual-stack."""
    import socket

    if workers > 1:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port))]
    found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return [(family, kind, proto, address) for family, kind, proto, _, address in found]


def _settings_and_device() -> Settings:
    """The settings, with ``GENREC_DEVICE`` checked against what torch sees (one line)."""
    from training.device import DeviceError, resolve_device

    config = settings()
    try:
        resolve_device(config.device)
    except DeviceError as exc:
        raise fail(f"GENREC_DEVICE: {exc}") from None
    return config


def _check_schedule(config: Settings) -> None:
    """Refuse, in one line, a periodic retrain of a model that does not exist: the
    worker's first schedule raised it out of its loop as a traceback, on every start."""
    from training.models import REGISTRY

    model = config.default_model
    if config.retrain_every and config.default_model_explicit and model not in REGISTRY:
        raise fail(
            f"GENREC_DEFAULT_MODEL: unknown model {model!r} (GENREC_RETRAIN_EVERY retrains "
            f"it); known: {', '.join(sorted(REGISTRY))}"
        )


def worker(
    once: Annotated[
        bool,
        typer.Option(
            help="run at most one job (if one is claimable), then exit (code 2 if the job failed)"
        ),
    ] = False,
    poll_interval: Annotated[
        float | None,
        typer.Option(help="seconds between looks for a job (default GENREC_JOB_POLL_INTERVAL_S)"),
    ] = None,
) -> None:
    """Run retrain and tune jobs from the database (any number of workers, on any machine);
    an idle worker joins the search of a running tune job."""
    import math

    from sqlalchemy.exc import SQLAlchemyError

    from app.core.db import database_problem, missing_table
    from app.worker import HANDED_BACK, run_worker

    # As GENREC_JOB_POLL_INTERVAL_S: a negative interval polled the database in a busy loop,
    # and 0 was silently replaced by the default (the log said "polling every 2.0s").
    if poll_interval is not None and not (math.isfinite(poll_interval) and poll_interval > 0):
        raise fail(f"--poll-interval must be a positive number of seconds, got {poll_interval}")
    config = _settings_and_device()
    _check_schedule(config)
    outcomes: list[str] = []
    try:
        ran = run_worker(config, once=once, poll_interval=poll_interval, outcomes=outcomes)
    except SQLAlchemyError as exc:  # only with --once: a polling worker waits it out
        problem = database_problem(config.database_url, exc)
        reached = "use" if missing_table(exc) else "reach"  # tables missing: it was reached
        raise fail(f"cannot {reached} the database at {problem}") from None
    # A job handed back as the worker stopped was not run here: it was counted as one.
    handed = outcomes.count(HANDED_BACK)
    console.print(
        f"worker stopped after {ran} job(s)"
        + (f"; {handed} handed back to the queue" if handed else "")
    )
    # A one-shot run (a cron line, a batch job) whose job failed exited 0, as a success.
    if once and outcomes and outcomes[-1] in _FAILED:
        raise fail(
            f"the job {outcomes[-1]}: its log says why (the dashboard's jobs page, GET /admin/jobs)"
        )


#: Outcomes of a job that did not finish (``app.retrain.runner``): ``worker --once`` exits
#: non-zero on them. "interrupted": stopped by a database error, retried on its next lease.
_FAILED = ("failed", "interrupted")


def migrate() -> None:
    """Apply the database migrations (Alembic upgrade head)."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.core.db import database_problem, upgrade_database

    url = settings().database_url
    try:
        left_alone = upgrade_database(url)
    except SQLAlchemyError as exc:  # unreachable, refused, no such database: one line
        raise fail(f"cannot migrate the database at {database_problem(url, exc)}") from None
    # A later release's schema is left alone with exit 0: compose's api containers wait for
    # this command to succeed, and this release runs on that schema (docs/deployment.md).
    out.print(left_alone or "database is at the latest migration")
