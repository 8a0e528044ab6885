"""The polling thread shared by the catalog, erasure, experiment and model-reload polls."""

from __future__ import annotations

import logging
import threading

import pytest

from app.core.poller import Poller

#: Long enough for any thread on a loaded machine to get there; a test only waits this
#: long when it is about to fail.
PATIENCE_S = 30.0


def test_the_thread_polls_at_the_interval_until_stopped() -> None:
    threads: list[str] = []
    third = threading.Event()

    def poll() -> None:
        threads.append(threading.current_thread().name)
        if len(threads) == 3:
            third.set()

    poller = Poller("test-poll", poll, interval_s=0.01)
    poller.start()
    assert poller.running
    assert third.wait(PATIENCE_S)
    poller.stop()
    assert not poller.running
    assert set(threads) == {"test-poll"}
    assert not any(t.name == "test-poll" for t in threading.enumerate())  # it ended


def test_a_poll_that_raises_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []
    again = threading.Event()

    def poll() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the table is gone")
        again.set()

    poller = Poller("flaky-poll", poll, interval_s=0.01)
    with caplog.at_level(logging.ERROR, logger="app.core.poller"):
        poller.start()
        try:
            assert again.wait(PATIENCE_S)
        finally:
            poller.stop()
    failed = [r for r in caplog.records if r.name == "app.core.poller"]
    assert failed and failed[0].getMessage() == (
        "flaky-poll: poll failed; will retry at the next interval"
    )
    assert failed[0].exc_info is not None and "the table is gone" in str(failed[0].exc_info[1])


def test_start_does_not_poll_and_a_second_start_adds_no_thread() -> None:
    calls: list[int] = []
    poller = Poller("idle-poll", lambda: calls.append(1), interval_s=3600.0)
    poller.start()
    poller.start()
    try:
        assert [t.name for t in threading.enumerate()].count("idle-poll") == 1
        assert calls == []  # the first poll is an interval away
    finally:
        poller.stop()
    poller.stop()  # stopping twice is harmless
    assert not poller.running


def test_a_failure_that_repeats_is_logged_whole_once_then_as_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A poll failing the same way every interval wrote its whole traceback each time."""
    calls: list[int] = []
    recovered = threading.Event()

    def poll() -> None:
        calls.append(1)
        if len(calls) <= 4:
            raise RuntimeError("the table is gone")
        recovered.set()

    poller = Poller("stuck-poll", poll, interval_s=0.01)
    with caplog.at_level(logging.WARNING, logger="app.core.poller"):
        poller.start()
        try:
            assert recovered.wait(PATIENCE_S)
        finally:
            poller.stop()
    lines = [r for r in caplog.records if r.name == "app.core.poller"]
    assert [r.exc_info is not None for r in lines] == [True, False, False, False, False]
    assert lines[1].getMessage() == (
        "stuck-poll: poll failed again (2 in a row): RuntimeError: the table is gone"
    )
    assert lines[-1].getMessage() == "stuck-poll: polling again after 4 failed polls"
