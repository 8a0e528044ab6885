"""Cache: in-process LRU semantics; Redis layout and degrade-to-miss on errors."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.cache import MemoryCache, RedisCache
from app.core.metrics import Metrics


def _value(metrics: Metrics, name: str) -> float:
    return float(metrics.registry.get_sample_value(name) or 0.0)


def test_memory_cache_roundtrip_versions_and_invalidate() -> None:
    metrics = Metrics()
    cache = MemoryCache(metrics)
    assert cache.get("u", "m", "1") is None
    cache.set("u", "m", "1", np.arange(3, dtype=np.float32), stamp=7)
    cache.set("u", "m", "2", np.ones(2, dtype=np.float32), stamp=8)
    state, stamp = cache.get("u", "m", "1") or (None, None)
    assert state is not None and state.tolist() == [0.0, 1.0, 2.0] and stamp == 7
    cache.invalidate(["u"])
    assert cache.get("u", "m", "1") is None and cache.get("u", "m", "2") is None
    assert _value(metrics, "genrec_cache_hits_total") == 1
    assert _value(metrics, "genrec_cache_misses_total") == 3


def test_memory_cache_evicts_least_recent_user_and_expires() -> None:
    cache = MemoryCache(Metrics(), max_users=2)
    for user in ("a", "b"):
        cache.set(user, "m", "1", np.zeros(1), 0)
    cache.get("a", "m", "1")  # a is now the most recent
    cache.set("c", "m", "1", np.zeros(1), 0)
    assert cache.get("b", "m", "1") is None
    assert cache.get("a", "m", "1") is not None
    expired = MemoryCache(Metrics(), ttl_s=-1.0)
    expired.set("a", "m", "1", np.zeros(1), 0)
    assert expired.get("a", "m", "1") is None


@pytest.mark.integration
def test_redis_layout_one_hash_per_user(redis_url: str, redis_namespace: str) -> None:
    import redis

    cache = RedisCache(redis_url, Metrics(), namespace=redis_namespace, ttl_s=60)
    cache.set("u1", "mult-vae", "3", np.array([1.5, -2.0], dtype=np.float32), stamp=42)
    cache.set("u1", "ease", "1", np.array([0.5], dtype=np.float32), stamp=42)
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_namespace}:state:u1"
    assert client.hget(key, "mult-vae:3") == np.array([1.5, -2.0], dtype=np.float32).tobytes()
    assert 0 < client.ttl(key) <= 60
    state, stamp = cache.get("u1", "mult-vae", "3") or (None, None)
    assert state is not None and state.tolist() == [1.5, -2.0] and stamp == 42
    cache.invalidate(["u1"])
    assert client.exists(key) == 0
    client.close()
    cache.close()


def test_redis_errors_are_misses_counted_and_never_raise() -> None:
    metrics = Metrics()
    # Port 1 on localhost refuses connections immediately.
    cache = RedisCache("redis://127.0.0.1:1/0", metrics, backoff_s=0.0)
    cache.set("u", "m", "1", np.zeros(2), 1)
    assert cache.get("u", "m", "1") is None
    cache.invalidate(["u"])
    assert cache.ping() is False
    assert _value(metrics, "genrec_cache_errors_total") == 4
    assert _value(metrics, "genrec_cache_misses_total") == 1


@pytest.mark.integration
def test_get_many_is_one_round_trip_with_hits_and_misses(
    redis_url: str, redis_namespace: str
) -> None:
    metrics = Metrics()
    caches = [MemoryCache(metrics), RedisCache(redis_url, metrics, namespace=redis_namespace)]
    for cache in caches:
        cache.set("a", "m", "1", np.arange(2, dtype=np.float32), stamp=3)
        cache.set("c", "m", "1", np.ones(2, dtype=np.float32), stamp=4)
        got = cache.get_many(["a", "b", "c"], "m", "1")
        assert got[1] is None
        assert got[0] is not None and got[0][0].tolist() == [0.0, 1.0] and got[0][1] == 3
        assert got[2] is not None and got[2][1] == 4
        cache.close()
    assert _value(metrics, "genrec_cache_hits_total") == 4
    assert _value(metrics, "genrec_cache_misses_total") == 2
    down = RedisCache("redis://127.0.0.1:1/0", metrics, timeout_s=0.1)
    assert down.get_many(["a", "b"], "m", "1") == [None, None]  # an error is a miss
