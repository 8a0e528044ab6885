"""Circuit breaker transitions, on a stepped clock (no sleeping, no wall time)."""

from __future__ import annotations

import pytest

from app.core.breaker import BreakerState, CircuitBreaker


class SteppedClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: SteppedClock, changes: list[BreakerState] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=2,
        base_interval_s=0.5,
        max_interval_s=2.0,
        clock=clock,
        on_change=None if changes is None else changes.append,
    )


def test_opens_after_consecutive_failures_only() -> None:
    clock = SteppedClock()
    breaker = _breaker(clock)
    breaker.failure()
    breaker.success()  # not consecutive: the count starts again
    breaker.failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_one_probe_after_the_interval_and_the_interval_grows_to_the_cap() -> None:
    clock = SteppedClock()
    changes: list[BreakerState] = []
    breaker = _breaker(clock, changes)
    breaker.failure()
    breaker.failure()
    intervals = []
    for _ in range(4):
        interval = breaker.interval_s
        intervals.append(interval)
        clock.now += interval - 0.01
        assert not breaker.allow()  # still open
        clock.now += 0.01
        assert breaker.allow()  # this caller probes ...
        assert breaker.state is BreakerState.HALF_OPEN
        assert not breaker.allow()  # ... and nobody else meanwhile
        breaker.failure()  # the probe failed: open again, for longer
    assert intervals == [0.5, 1.0, 2.0, 2.0]
    clock.now += breaker.interval_s
    assert breaker.allow()
    breaker.success()  # the probe succeeded: closed, interval back to the base
    assert breaker.state is BreakerState.CLOSED and breaker.interval_s == 0.5
    assert breaker.allow()
    assert changes[:3] == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN]
    assert changes[-1] is BreakerState.CLOSED


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
