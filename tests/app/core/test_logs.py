"""Structured logs: JSON lines with the request id; the access log written off the caller's thread."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from app.core.logs import JsonFormatter, _write_batch, configure_logging, request_id_var


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


class _CountingStream(io.StringIO):
    """A stream that counts the writes it gets (each one a system call on a real one)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _access_record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.getLogger("app.access").makeRecord(
        "app.access", level, __file__, 1, message, (), None
    )


def test_a_drain_is_one_write_per_stream_and_each_record_for_other_handlers(
    lines: _Lines,
) -> None:
    stream = _CountingStream()
    plain = logging.StreamHandler(stream)
    plain.setFormatter(JsonFormatter())
    quiet_stream = _CountingStream()
    quiet = logging.StreamHandler(quiet_stream)
    quiet.setLevel(logging.WARNING)  # a handler's own level still applies
    root = logging.getLogger()
    root.addHandler(plain)
    root.addHandler(quiet)
    try:
        _write_batch([_access_record(f"GET /{n} 200") for n in range(5)])
    finally:
        root.removeHandler(plain)
        root.removeHandler(quiet)
    written = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert written == [f"GET /{n} 200" for n in range(5)]  # all of them, in order
    assert stream.writes == 1
    assert quiet_stream.writes == 0 and quiet_stream.getvalue() == ""
    # The test's collecting handler is no plain stream: it got each record.
    got = [str(e["message"]) for e, _ in lines.lines]
    assert [m for m in got if m.startswith("GET /")][-5:] == [f"GET /{n} 200" for n in range(5)]


def test_uvicorns_coloured_copy_of_its_message_is_left_out_of_json_lines() -> None:
    """uvicorn logs ``extra={"color_message": ...}`` (ANSI escapes) for its console;
    a JSON line carried it beside ``message`` (seen in ``make run``'s start-up lines)."""
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, "", 0, "Started server process [%d]", (7,), None
    )
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Started server process [7]"
    assert "color_message" not in entry
    assert "\x1b" not in json.dumps(entry)


def test_a_text_line_cannot_be_split_by_what_a_client_sent() -> None:
    # GENREC_LOG_FORMAT=text under `genrec serve`: nobody configured the root logger, so
    # configure_logging adds the handler that writes every app line, the access line with
    # the request's decoded path among them (%0d%0a is CR LF).
    root = logging.getLogger()
    kept = root.handlers[:]
    root.handlers.clear()
    try:
        configure_logging("INFO", "text")
        (handler,) = root.handlers
        forged = "2026-12-07 08:00:00,000 INFO app.fake: injected"
        record = logging.LogRecord(
            "app.access", logging.INFO, "", 0, "%s %s %d", ("GET", f"/x\r\n{forged}", 404), None
        )
        line = handler.format(record)
    finally:
        root.handlers[:] = kept
    assert "\n" not in line and "\r" not in line
    assert line.endswith(f"app.access: GET /x\\r\\n{forged} 404")


def test_a_tracebacks_message_cannot_start_a_line_that_looks_like_a_record() -> None:
    """The message was escaped, the exception's text was not: an error raised with a
    client's id in it (``%0d%0a`` decodes to CR LF) printed a made-up record after the
    traceback. Every line after the record's first is indented now (or empty), its
    controls other than the line break escaped, and the traceback stays readable."""
    from app.core.logs import TextFormatter

    forged = "2026-12-07 08:00:00,000 INFO app.fake: injected"
    try:
        try:
            raise KeyError("first")
        except KeyError as exc:
            error = ValueError(f"no item x\r\n{forged}\rthen\u2028{forged}\x1b[2K")
            error.add_note(f"note\n{forged}")
            raise error from exc
    except ValueError:
        record = logging.LogRecord(
            "app.catalog", logging.ERROR, __file__, 1, "could not store %s", ("x",), None
        )
        record.exc_info = sys.exc_info()
    text = TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s").format(record)
    first, *rest = text.splitlines()  # splitlines: CR, U+2028 ... break lines too
    assert first.endswith("ERROR app.catalog: could not store x")
    assert rest and all(line.startswith("  ") or not line for line in rest), rest
    assert not any(line.startswith("2026-") for line in rest), rest
    assert "\x1b" not in text
    # Readable: the chain, the frames and each message, one per line as raised.
    assert "  Traceback (most recent call last):" in rest
    assert "  KeyError: 'first'" in rest
    assert any(line.startswith("  The above exception was the direct cause") for line in rest)
    assert "  ValueError: no item x\\r" in rest
    assert f"  {forged}\\rthen\\u2028{forged}\\x1b[2K" in rest
    assert f"  {forged}" in rest and "  note" in rest
