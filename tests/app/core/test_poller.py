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


@pytest.mark.parametrize("failures", [1, 4])
def test_a_failed_poll_is_logged_and_the_polls_go_on(
    failures: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The first failure is logged whole and the next poll runs; the same failure again
    is one line with its count (a poll failing every interval wrote its whole traceback
    each time), and the recovery says how many polls failed."""
    calls: list[int] = []
    recovered = threading.Event()

    def poll() -> None:
        calls.append(1)
        if len(calls) <= failures:
            raise RuntimeError("the table is gone")
        recovered.set()

    poller = Poller("flaky-poll", poll, interval_s=0.01)
    with caplog.at_level(logging.WARNING, logger="app.core.poller"):
        poller.start()
        try:
            assert recovered.wait(PATIENCE_S)
        finally:
            poller.stop()
    lines = [r for r in caplog.records if r.name == "app.core.poller"]
    assert [r.getMessage() for r in lines] == [
        "flaky-poll: poll failed; will retry at the next interval",
        *(
            f"flaky-poll: poll failed again ({n} in a row): RuntimeError: the table is gone"
            for n in range(2, failures + 1)
        ),
        f"flaky-poll: polling again after {failures} failed polls",
    ]
    assert [r.exc_info is not None for r in lines] == [True] + [False] * failures
    assert lines[0].exc_info is not None and "the table is gone" in str(lines[0].exc_info[1])


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
