"""Structured logs: one JSON object per line, carrying the id of the request that logged it.

Why JSON: log pipelines (Loki, CloudWatch, ELK) index fields, so a request id
in every line lets an operator pull one request's whole story out of many
replicas' interleaved output. The id lives in a ``ContextVar`` that the
request middleware sets; asyncio tasks and starlette's thread-pool calls copy
the context, so lines logged from the thread pool carry it too.

Why the access log goes through a queue: one line per request, formatted and
written on the event loop thread, was 13% of that thread's samples under
mixed load, and every request's latency waits on that thread. (It saves no
CPU: the process is bound by the GIL, and the listener spends what the loop
did; docs/performance.md, "Per-request CPU of the mix, by thread".)
``app.access`` records are handed to one
writer thread instead (``_AccessLogThread``), which formats and writes them to
the root logger's handlers; the request id is read into the record before it
leaves the request's context. The thread drains the queue every
``_DRAIN_INTERVAL_S`` rather than waking for each record, as the standard
library's ``QueueListener`` does: that thread's CPU per request fell from
0.043 to 0.031 ms (docs/performance.md, "POST bodies read by the routes, the
access log drained every 10 ms"); and it writes a drain's lines to a plain stream in
one write (``_write_batch``; "The access log's lines of a drain in one write").
Other loggers stay synchronous, so a
warning or an error is on disk before the code that logged it goes on.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from logging.handlers import QueueHandler
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("genrec_request_id", default=None)

#: Attributes every LogRecord has; anything else was passed with ``extra=`` and is emitted.
#: ``color_message`` is uvicorn's copy of its message with ANSI colour codes, for its own
#: console formatter: in a JSON line it repeats ``message`` with escape sequences in it.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id"?, extra fields..., "exc"?}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


#: Characters that would end or rewrite a line of a text log, as ``repr`` writes them:
#: C0 and C1 controls (CR, LF, ESC ...; tab is kept), DEL, and the Unicode line and
#: paragraph separators some viewers break lines at.
_CONTROLS = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if code != 0x09
} | {0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"}


class TextFormatter(logging.Formatter):
    """Plain lines (``GENREC_LOG_FORMAT=text``) whose message cannot forge another line.

    Messages carry what clients sent: the access line's path (``%0d%0a`` decodes to
    CR LF), ids in errors. Written as is, ``GET /v1/items/x%0d%0a<date> INFO ...``
    printed a second, made-up log line; here controls are escaped as in ``repr``,
    as the JSON format escapes them.

    A traceback keeps its line breaks (an operator reads it frame by frame), but the
    exception's message and notes carry client text too, and no parser can tell
    which of its lines they are. So every line of it is indented (``_INDENT``): only
    a record's first line starts at the margin, which is what a multiline rule (a
    line that does not start with a timestamp continues the record) relies on. The
    other controls in those lines (CR, ESC, U+2028 ...) are escaped as in a message.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(_CONTROLS)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


#: What starts every line of a text record's traceback: nothing after a record's first
#: line starts at the margin.
_INDENT = "  "
#: ``_CONTROLS`` but the line feed, which ``_indented`` splits at.
_CONTROLS_IN_LINE = {code: text for code, text in _CONTROLS.items() if code != 0x0A}


def _indented(text: str) -> str:
    """``text`` with each line indented (empty ones left empty) and its controls escaped."""
    return "\n".join(
        _INDENT + line.translate(_CONTROLS_IN_LINE) if line else "" for line in text.split("\n")
    )


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
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        owned.append(handler)
    logging.getLogger("app").setLevel(level)
    _access_log_through_queue()
    if fmt != "json":
        return
    owned += logging.getLogger("uvicorn").handlers + logging.getLogger("uvicorn.error").handlers
    formatter = JsonFormatter()
    for handler in owned:
        handler.setFormatter(formatter)
    logging.getLogger("uvicorn.access").disabled = True


class _RequestQueueHandler(QueueHandler):
    """Enqueues the record itself, with its request id read now.

    The base class formats the record here and strips it (for a queue to another
    process); in-process, that is the very work this handler moves off the
    calling thread, so ``prepare`` only keeps what the listener thread cannot see:
    the request id in this context.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        request_id = request_id_var.get()
        if request_id is not None and "request_id" not in record.__dict__:
            record.request_id = request_id
        return record


#: How long the access-log thread lets records gather between two drains of its queue:
#: at most this much later on disk, and one wake-up per interval instead of per request.
_DRAIN_INTERVAL_S = 0.01
#: Put on the queue to stop the thread once everything before it is written.
_STOP = logging.LogRecord("app.access", logging.INFO, "", 0, "stop", None, None)


class _AccessLogThread:
    """Writes queued access records through the root logger's handlers of the moment
    (ours, a test runner's, an embedder's), which is what propagation would do."""

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord]) -> None:
        self.records = records
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self.records.get()]  # blocks only while the server is idle
            while True:
                try:
                    batch.append(self.records.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            if stop:
                batch = batch[: batch.index(_STOP)]
            _write_batch(batch)
            if stop:
                return
            time.sleep(_DRAIN_INTERVAL_S)

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self.records.put(_STOP)
        self._thread.join()


_writer: _AccessLogThread | None = None


def _write_batch(records: list[logging.LogRecord]) -> None:
    """What ``root.handle`` would do for each record, with one write per plain stream.

    A ``StreamHandler`` (what ``configure_logging`` installs, stderr) writes and
    flushes each line, a system call each; the call releases the GIL and the event
    loop, waiting for it, takes it, so the writer thread then waits to get it back:
    one hand-off between threads per request. Joined, a drain's lines are one
    write. Any other handler (a file, a test runner's, an embedder's) gets each
    record as before.
    """
    root = logging.getLogger()
    if root.disabled or not records:
        return
    if not root.handlers:  # the standard library's last resort, as for one record
        for record in records:
            root.handle(record)
        return
    records = [record for record in records if root.filter(record)]
    for handler in root.handlers:
        wanted = [record for record in records if record.levelno >= handler.level]
        if type(handler) is logging.StreamHandler:
            _write_joined(handler, wanted)
        else:
            for record in wanted:
                handler.handle(record)


def _write_joined(handler: logging.StreamHandler[Any], records: list[logging.LogRecord]) -> None:
    """``handler.emit`` for all of ``records`` as one write and one flush."""
    lines = []
    for record in records:
        if not handler.filter(record):
            continue
        try:
            lines.append(handler.format(record) + handler.terminator)
        except Exception:
            handler.handleError(record)
    if not lines:
        return
    with handler.lock or contextlib.nullcontext():
        try:
            handler.stream.write("".join(lines))
            handler.flush()
        except Exception:
            handler.handleError(records[-1])


def _access_log_through_queue() -> None:
    """``app.access`` -> queue -> writer thread -> the root's handlers; once per process."""
    global _writer
    if _writer is not None:
        return
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    access = logging.getLogger("app.access")
    access.addHandler(_RequestQueueHandler(records))
    access.propagate = False
    _writer = _AccessLogThread(records)
    atexit.register(_stop_writer)


def _stop_writer() -> None:
    """Write what is queued, then stop the thread (at exit)."""
    if _writer is not None:
        _writer.stop()


def _listen_again_in_child() -> None:
    """A forked child has the queue but not the parent's writer thread: start its own."""
    global _writer
    if _writer is not None:
        _writer = _AccessLogThread(_writer.records)


os.register_at_fork(after_in_child=_listen_again_in_child)
