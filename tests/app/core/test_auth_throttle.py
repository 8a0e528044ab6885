"""Wrong admin tokens per client address: a sliding window, a lockout, a reset on success."""

from __future__ import annotations

from app.core.auth_throttle import MAX_TRACKED, AuthThrottle
from tests.manual_clock import ManualClock


def test_the_nth_failure_in_the_window_locks_the_address_out_until_the_oldest_leaves() -> None:
    clock = ManualClock(0.0)
    throttle = AuthThrottle(max_failures=3, window_s=60.0, clock=clock)
    for _ in range(2):
        throttle.failed("10.0.0.1")
        clock.advance(10.0)
    assert throttle.retry_after("10.0.0.1") is None  # two of three
    throttle.failed("10.0.0.1")  # at t=20: failures at 0, 10, 20
    assert throttle.retry_after("10.0.0.1") == 40  # the one at t=0 leaves the window at 60
    assert throttle.retry_after("10.0.0.2") is None  # another address is not affected
    clock.advance(40.0)
    assert throttle.retry_after("10.0.0.1") is None  # t=60: two left in the window


def test_success_clears_the_failures_and_zero_means_no_limit() -> None:
    clock = ManualClock(0.0)
    throttle = AuthThrottle(max_failures=2, window_s=60.0, clock=clock)
    throttle.failed("a")
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.retry_after("a") is None
    off = AuthThrottle(max_failures=0, clock=clock)
    for _ in range(100):
        off.failed("a")
    assert off.retry_after("a") is None


def test_memory_is_bounded_by_forgetting_the_least_recently_failed() -> None:
    throttle = AuthThrottle(max_failures=2, window_s=60.0, clock=ManualClock(0.0))
    throttle.failed("first")
    throttle.failed("first")
    for n in range(MAX_TRACKED):
        throttle.failed(f"other-{n}")
    assert throttle.retry_after("first") is None  # forgotten, not locked out
    assert len(throttle._failures) == MAX_TRACKED
