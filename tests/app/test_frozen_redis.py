"""A frozen Redis (SIGSTOP) is bypassed after the first timeouts (issue #16, item 6).

A private redis-server on a free port is frozen — the shared one on 6379 is
never touched. The breaker's clock is stepped by the test; what is asserted
is which Redis calls are attempted, never how long anything took (the
latency effect is measured by ``benchmarks/frozen_redis.py``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.core.breaker import BreakerState
from app.core.cache import RedisCache
from app.core.metrics import Metrics
from tests.conftest import require_tool

pytestmark = pytest.mark.integration


class PrivateRedis:
    """A redis-server of this test only, that can be frozen (SIGSTOP) and thawed (SIGCONT)."""

    def __init__(self) -> None:
        binary = require_tool("redis-server", "this test freezes a Redis of its own")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.stop()


class SteppedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingClient:
    """Wraps a redis client and counts every command the cache asks of it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        self.calls += 1
        return getattr(self.inner, name)


def _value(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def test_frozen_redis_is_bypassed_then_probed_and_used_again(
    private_redis: PrivateRedis,
) -> None:
    clock = SteppedClock()
    metrics = Metrics()
    cache = RedisCache(private_redis.url, metrics, timeout_s=0.1, clock=clock)
    client = CountingClient(cache._client)
    cache._client = client  # type: ignore[assignment]
    cache.set("u1", "m", "1", np.ones(2, dtype=np.float32), stamp=1)
    assert cache.get("u1", "m", "1") is not None

    private_redis.freeze()
    cache.get("u1", "m", "1")  # times out ...
    cache.get("u2", "m", "1")  # ... twice: the breaker opens
    assert cache.breaker.state is BreakerState.OPEN
    assert _value(metrics, "genrec_cache_errors_total") == 2
    assert _value(metrics, "genrec_cache_breaker_state") == BreakerState.OPEN

    attempted = client.calls
    for n in range(20):  # a burst of writes and reads while frozen: Redis is not called
        assert cache.get(f"w{n}", "m", "1") is None
        cache.set(f"w{n}", "m", "1", np.ones(2, dtype=np.float32), stamp=2)
    assert cache.ping() is False
    assert client.calls == attempted
    assert _value(metrics, "genrec_cache_bypassed_total") == 41
    assert _value(metrics, "genrec_cache_errors_total") == 2

    clock.now += cache.breaker.interval_s  # one probe, still frozen: open for longer
    cache.get("p", "m", "1")
    assert client.calls == attempted + 1
    assert cache.breaker.state is BreakerState.OPEN and cache.breaker.interval_s == 1.0

    private_redis.thaw()
    clock.now += 0.5  # not yet: half of the grown interval
    assert cache.get("u1", "m", "1") is None and client.calls == attempted + 1
    clock.now += 0.5
    assert cache.ping() is True  # the probe gets through: closed again
    assert cache.breaker.state is BreakerState.CLOSED
    assert _value(metrics, "genrec_cache_breaker_state") == BreakerState.CLOSED
    cache.set("u3", "m", "1", np.full(2, 3, dtype=np.float32), stamp=5)
    got = cache.get("u3", "m", "1")
    assert got is not None and got[0].tolist() == [3.0, 3.0] and got[1] == 5
    assert _value(metrics, "genrec_cache_breaker_opened_total") == 2
    cache.close()


def test_interaction_writes_never_wait_on_a_frozen_redis(
    make_client: Callable[..., TestClient],
    postgres_url: str,
    private_redis: PrivateRedis,
) -> None:
    """Writes do not touch the cache (app.serving.interactions), so a frozen Redis costs
    them nothing: no call waits its timeout, the breaker stays closed, all are recorded."""
    client = make_client(database_url=postgres_url, redis_url=private_redis.url)
    prefix = f"frozen-{os.getpid()}-{time.monotonic_ns()}"

    private_redis.freeze()
    statuses = [
        client.post("/v1/interactions", json={"user_id": f"{prefix}-{n}", "item_id": "1"})
        for n in range(12)
    ]
    assert [r.status_code for r in statuses] == [201] * 12
    metrics = client.get("/metrics").text
    # Not one call was made: none timed out, none was skipped by an open breaker.
    assert "genrec_cache_errors_total 0.0" in metrics
    assert "genrec_cache_bypassed_total 0.0" in metrics
    assert "genrec_cache_breaker_state 0.0" in metrics
    private_redis.thaw()

    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM interactions WHERE user_id LIKE :p"),
                {"p": f"{prefix}-%"},
            ).scalar_one()
    finally:
        engine.dispose()
    assert stored == 12
