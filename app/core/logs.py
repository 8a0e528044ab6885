"""Structured logs: one JSON object per line, carrying the id of the request that logged it.

Why JSON: log pipelines (Loki, CloudWatch, ELK) index fields, so a request id
in every line lets an operator pull one request's whole story out of many
replicas' interleaved output. The id lives in a ``ContextVar`` that the
request middleware sets; asyncio tasks and starlette's thread-pool calls copy
the context, so lines logged from the thread pool carry it too.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("genrec_request_id", default=None)

#: Attributes every LogRecord has; anything else was passed with ``extra=`` and is emitted.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id"?, extra fields..., "exc"?}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: str = "json") -> None:
    """Give our loggers a level and, with ``fmt == "json"``, JSON lines on the handlers
    this process owns: the one added here when nobody configured logging, and uvicorn's.

    Handlers someone else installed on the root logger (a test runner, an embedding
    application) keep their format. uvicorn's own access log is silenced in JSON
    mode: the request middleware writes one access line per request with its id.
    """
    root = logging.getLogger()
    owned: list[logging.Handler] = []
    if not root.handlers:
        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        owned.append(handler)
    logging.getLogger("app").setLevel(level)
    if fmt != "json":
        return
    owned += logging.getLogger("uvicorn").handlers + logging.getLogger("uvicorn.error").handlers
    formatter = JsonFormatter()
    for handler in owned:
        handler.setFormatter(formatter)
    logging.getLogger("uvicorn.access").disabled = True
