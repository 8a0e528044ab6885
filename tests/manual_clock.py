"""A clock the test moves by hand, for code that takes ``clock=`` (no sleeping in tests)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ManualClock(Generic[T]):
    """Returns ``now`` when called; ``advance(delta)`` moves it (floats or datetimes)."""

    def __init__(self, start: T) -> None:
        self.now = start

    def __call__(self) -> T:
        return self.now

    def advance(self, delta: Any) -> None:
        self.now = self.now + delta
