"""Structured logs: JSON lines with the request id; the access log written off the caller's thread."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from app.core.logs import JsonFormatter, configure_logging, request_id_var


class _Lines(logging.Handler):
    """Collects formatted lines and the thread each was written on."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[tuple[dict[str, object], str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((json.loads(self.format(record)), threading.current_thread().name))

    def wait_for(self, message: str, timeout_s: float = 5.0) -> tuple[dict[str, object], str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for entry, thread in self.lines:
                if entry["message"] == message:
                    return entry, thread
            time.sleep(0.01)
        raise AssertionError(f"{message!r} was never written; got {self.lines}")


@pytest.fixture
def lines() -> Iterator[_Lines]:
    configure_logging("INFO")
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def test_access_line_carries_the_request_id_and_is_written_by_another_thread(
    lines: _Lines,
) -> None:
    token = request_id_var.set("req-42")
    try:
        logging.getLogger("app.access").info("GET /x 200", extra={"route": "/x", "ms": 1.5})
    finally:
        request_id_var.reset(token)
    entry, thread = lines.wait_for("GET /x 200")
    assert entry["request_id"] == "req-42"  # read before the record left the request
    assert entry["route"] == "/x" and entry["ms"] == 1.5 and entry["logger"] == "app.access"
    assert thread != threading.current_thread().name


def test_an_access_line_outside_a_request_has_no_request_id(lines: _Lines) -> None:
    logging.getLogger("app.access").info("GET /y 200")
    entry, _ = lines.wait_for("GET /y 200")
    assert "request_id" not in entry


def test_other_loggers_write_before_the_call_returns(lines: _Lines) -> None:
    token = request_id_var.set("req-7")
    try:
        logging.getLogger("app.serving").warning("model reload failed")
    finally:
        request_id_var.reset(token)
    # No waiting: a warning is written on the caller's thread, synchronously.
    (entry, thread), *_ = [(e, t) for e, t in lines.lines if e["message"] == "model reload failed"]
    assert entry["request_id"] == "req-7" and entry["level"] == "WARNING"
    assert thread == threading.current_thread().name


def test_configuring_twice_writes_each_access_line_once(lines: _Lines) -> None:
    configure_logging("INFO")
    logging.getLogger("app.access").info("GET /z 200")
    lines.wait_for("GET /z 200")
    time.sleep(0.2)  # a second listener, if one had been started, would have written it too
    assert [e["message"] for e, _ in lines.lines].count("GET /z 200") == 1
