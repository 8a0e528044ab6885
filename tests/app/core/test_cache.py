"""Cache: in-process LRU semantics; Redis layout and degrade-to-miss on errors."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from app.core.cache import MemoryCache, RedisCache
from app.core.metrics import Metrics


def _value(metrics: Metrics, name: str) -> float:
    return float(metrics.registry.get_sample_value(name) or 0.0)


def test_memory_cache_roundtrip_and_versions() -> None:
    metrics = Metrics()
    cache = MemoryCache(metrics)
    assert cache.get("u", "m", "1") is None
    cache.set("u", "m", "1", np.arange(3, dtype=np.float32), stamp=7)
    cache.set("u", "m", "2", np.ones(2, dtype=np.float32), stamp=8)
    state, stamp = cache.get("u", "m", "1") or (None, None)
    assert state is not None and state.tolist() == [0.0, 1.0, 2.0] and stamp == 7
    assert cache.get("u", "m", "2") is not None and cache.get("u", "m", "3") is None
    assert _value(metrics, "genrec_cache_hits_total") == 2
    assert _value(metrics, "genrec_cache_misses_total") == 2


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
    cache = RedisCache(redis_url, Metrics(), namespace=redis_namespace, ttl_s=60)
    cache.set("u1", "mult-vae", "3", np.array([1.5, -2.0], dtype=np.float32), stamp=42)
    cache.set("u1", "ease", "1", np.array([0.5], dtype=np.float32), stamp=42)
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_namespace}:state:u1"
    assert client.hget(key, "mult-vae:3") == np.array([1.5, -2.0], dtype=np.float32).tobytes()
    assert 0 < client.ttl(key) <= 60
    state, stamp = cache.get("u1", "mult-vae", "3") or (None, None)
    assert state is not None and state.tolist() == [1.5, -2.0] and stamp == 42
    assert client.hget(key, "ease:1:stamp") == b"42"
    client.close()
    cache.close()


@pytest.mark.integration
def test_a_new_version_of_a_model_replaces_the_old_ones_state(
    redis_url: str, redis_namespace: str
) -> None:
    """Each write renews the user's key, so an active user kept a field for every version
    ever served to them: one more state per retrain, never expiring."""
    cache = RedisCache(redis_url, Metrics(), namespace=redis_namespace, ttl_s=60)
    for version in ("1", "2", "10"):
        cache.set("u1", "mult-vae", version, np.ones(2, dtype=np.float32), stamp=5)
    cache.set("u1", "mult-vae-x", "1", np.ones(1, dtype=np.float32), stamp=5)  # another model
    cache.set("u1", "ease", "3", np.ones(1, dtype=np.float32), stamp=5)
    client = redis.Redis.from_url(redis_url)
    fields = sorted(f.decode() for f in client.hkeys(f"{redis_namespace}:state:u1"))
    assert fields == [
        "ease:3",
        "ease:3:stamp",
        "mult-vae-x:1",
        "mult-vae-x:1:stamp",
        "mult-vae:10",
        "mult-vae:10:stamp",
    ]
    cache.set("u1", "mult-vae", "2", np.ones(2, dtype=np.float32), stamp=5)  # a rollback
    assert cache.get("u1", "mult-vae", "10") is None and cache.get("u1", "ease", "3")
    client.close()
    cache.close()


def test_redis_errors_are_misses_counted_and_never_raise() -> None:
    metrics = Metrics()
    # Port 1 on localhost refuses connections immediately.
    cache = RedisCache("redis://127.0.0.1:1/0", metrics, backoff_s=0.0)
    cache.set("u", "m", "1", np.zeros(2), 1)
    assert cache.get("u", "m", "1") is None
    assert cache.ping() is False
    assert _value(metrics, "genrec_cache_errors_total") == 3
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


@pytest.mark.integration
def test_set_many_writes_every_state_in_one_round_trip(
    redis_url: str, redis_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(redis_url, Metrics(), namespace=redis_namespace, ttl_s=60)
    calls: list[str] = []
    real_call = cache._call
    monkeypatch.setattr(cache, "_call", lambda op: calls.append("trip") or real_call(op))
    entries = [(f"s{n}", np.full(2, n, dtype=np.float32), n + 10) for n in range(3)]
    cache.set_many(entries, "m", "1")
    assert calls == ["trip"]
    got = cache.get_many(["s0", "s1", "s2"], "m", "1")
    assert [(g[0].tolist(), g[1]) for g in got if g is not None] == [
        ([0.0, 0.0], 10), ([1.0, 1.0], 11), ([2.0, 2.0], 12)
    ]  # fmt: skip
    cache.close()


@pytest.mark.integration
def test_tiered_cache_answers_from_memory_and_shares_through_redis(
    redis_url: str, redis_namespace: str
) -> None:
    """A state this process holds costs no Redis call; one another process stored is read
    from Redis once, then held; writes reach memory at once and Redis when written behind."""
    from app.core.cache import TieredCache

    metrics = Metrics()
    other = RedisCache(redis_url, Metrics(), namespace=redis_namespace)  # another replica
    cache = TieredCache(
        RedisCache(redis_url, metrics, namespace=redis_namespace), metrics, 100, 60.0
    )
    redis_calls: list[str] = []
    real_call = cache.redis._call
    cache.redis._call = lambda op: redis_calls.append("trip") or real_call(op)  # type: ignore[method-assign]

    other.set("shared", "m", "1", np.ones(2, dtype=np.float32), stamp=5)
    cache.set("mine", "m", "1", np.zeros(2, dtype=np.float32), stamp=6)
    cache.flush()  # what the write-behind thread does a moment later
    assert other.get("mine", "m", "1") is not None  # written to Redis
    redis_calls.clear()
    got = cache.get_many(["mine", "shared", "nobody"], "m", "1")
    assert redis_calls == ["trip"]  # one round trip, for the two memory misses
    assert [g[1] if g is not None else None for g in got] == [6, 5, None]
    redis_calls.clear()
    again = cache.get_many(["mine", "shared"], "m", "1")
    assert redis_calls == [] and [g[1] for g in again if g is not None] == [6, 5]
    assert _value(metrics, "genrec_cache_local_hits_total") == 3
    assert _value(metrics, "genrec_cache_hits_total") == 4  # three from memory, one from Redis
    assert _value(metrics, "genrec_cache_misses_total") == 1
    other.close()
    cache.close()


@pytest.mark.integration
def test_tiered_cache_newest_takes_the_larger_stamp_of_both_tiers(
    redis_url: str, redis_namespace: str
) -> None:
    """Degraded reads cannot check a stamp against the log: after another replica refolded
    a user (a larger stamp in Redis) they must not get this process's older copy."""
    from app.core.cache import TieredCache

    other = RedisCache(redis_url, Metrics(), namespace=redis_namespace)
    cache = TieredCache(
        RedisCache(redis_url, Metrics(), namespace=redis_namespace), Metrics(), 100, 60.0
    )
    cache.set("u", "m", "1", np.zeros(2, dtype=np.float32), stamp=5)
    other.set("u", "m", "1", np.ones(2, dtype=np.float32), stamp=7)  # refolded elsewhere
    cache.flush()  # this process's older state arrives late: Redis keeps the larger stamp
    held = cache.get("u", "m", "1")
    assert held is not None and held[1] == 5  # the healthy path: memory first, stamp checked
    newest = cache.get_newest("u", "m", "1")
    assert newest is not None and (newest[1], newest[0].tolist()) == (7, [1.0, 1.0])
    redis.Redis.from_url(redis_url).delete(other.key("u"))  # memory's copy is all there is
    kept = cache.get_newest("u", "m", "1")
    assert kept is not None and kept[1] == 5
    cache.set("v", "m", "1", np.ones(2, dtype=np.float32), stamp=9)
    other.set("v", "m", "1", np.zeros(2, dtype=np.float32), stamp=8)  # older in Redis
    kept = cache.get_newest("v", "m", "1")
    assert kept is not None and kept[1] == 9
    assert cache.get_newest("nobody", "m", "1") is None
    other.close()
    cache.close()


def test_make_cache_puts_memory_in_front_of_redis_unless_told_not_to() -> None:
    from app.core.cache import TieredCache, make_cache

    metrics = Metrics()
    tiered = make_cache("redis://127.0.0.1:1/0", metrics)
    assert isinstance(tiered, TieredCache) and tiered.kind == "redis+memory"  # in /readyz
    plain = make_cache("redis://127.0.0.1:1/0", metrics, local_max_entries=0)
    assert isinstance(plain, RedisCache) and plain.kind == "redis"
    memory = make_cache(None, metrics)
    assert isinstance(memory, MemoryCache) and memory.kind == "memory"


@pytest.mark.integration
def test_forget_says_whether_every_tier_dropped_the_states(
    redis_url: str, redis_namespace: str
) -> None:
    """``forget`` (an erased user's states) was best effort and said nothing: with Redis
    failing or its breaker open, the states stayed there until their TTL and the erasure
    poll never knew to try again. It now says whether every tier dropped them."""
    from app.core.cache import TieredCache

    assert MemoryCache(Metrics()).forget(["u"]) is True
    down = RedisCache("redis://127.0.0.1:1/0", Metrics(), backoff_s=0.0)
    assert down.forget(["u"]) is False
    assert down.forget([]) is True  # nothing to drop: nothing to retry

    cache = TieredCache(
        RedisCache(redis_url, Metrics(), namespace=redis_namespace), Metrics(), 100, 60.0
    )
    other = RedisCache(redis_url, Metrics(), namespace=redis_namespace)  # another replica
    other.set("gone", "m", "1", np.ones(2, dtype=np.float32), stamp=5)
    real_delete = cache.redis._client.delete

    def failing(*_keys: str) -> int:
        raise redis.ConnectionError("connection reset")

    cache.redis._client.delete = failing  # type: ignore[method-assign]
    assert cache.forget(["gone"]) is False
    assert other.get("gone", "m", "1") is not None  # still in Redis, as said
    cache.redis._client.delete = real_delete  # type: ignore[method-assign]
    cache.redis.breaker.success()  # the breaker closed again (its probe succeeded)
    assert cache.forget(["gone"]) is True
    assert other.get("gone", "m", "1") is None
    other.close()
    cache.close()
