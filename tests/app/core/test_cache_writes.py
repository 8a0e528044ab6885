"""Write-behind of states to Redis: late, coalesced, never replacing a newer state."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis

from app.core.cache import RedisCache, TieredCache
from app.core.cache_writes import RedisWriteBehind
from app.core.metrics import Metrics


def _value(metrics: Metrics, name: str) -> float:
    return float(metrics.registry.get_sample_value(name) or 0.0)


def _stamp(cache: RedisCache, user_id: str) -> int | None:
    held = cache.get(user_id, "m", "1")
    return None if held is None else held[1]


@pytest.mark.integration
def test_a_state_reaches_redis_from_the_writer_thread_after_its_window(
    redis_url: str, redis_namespace: str
) -> None:
    metrics = Metrics()
    reader = RedisCache(redis_url, Metrics(), namespace=redis_namespace)
    slow = TieredCache(
        RedisCache(redis_url, metrics, namespace=redis_namespace), metrics, 100, 60.0, 30.0
    )
    slow.set("later", "m", "1", np.ones(2, dtype=np.float32), stamp=3)
    assert slow.local.get("later", "m", "1") is not None  # this process has it at once
    assert _stamp(reader, "later") is None  # Redis only after the 30 s window (or a flush)
    slow.close()  # writes what is pending
    assert _stamp(reader, "later") == 3

    quick = TieredCache(
        RedisCache(redis_url, metrics, namespace=redis_namespace), metrics, 100, 60.0, 0.01
    )
    quick.set("soon", "m", "1", np.ones(2, dtype=np.float32), stamp=4)
    deadline = time.monotonic() + 10.0
    while _stamp(reader, "soon") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _stamp(reader, "soon") == 4  # no flush: the thread wrote it
    quick.close()
    reader.close()


@pytest.mark.integration
def test_pending_states_are_coalesced_per_user_and_written_in_one_round_trip(
    redis_url: str, redis_namespace: str
) -> None:
    metrics = Metrics()
    target = RedisCache(redis_url, metrics, namespace=redis_namespace)
    trips: list[int] = []
    real_write = target.write_fields
    target.write_fields = lambda rows: trips.append(len(rows)) or real_write(rows)  # type: ignore[method-assign]
    writes = RedisWriteBehind(target, metrics, interval_s=30.0)
    state = np.zeros(2, dtype=np.float32)
    writes.put([("a", state, 3), ("b", state, 7)], "m", "1")
    writes.put([("a", state + 1, 4), ("b", state + 1, 6)], "m", "1")  # b's 6 is older than 7
    writes.put([("a", state, 4)], "m", "2")  # another version is another entry
    writes.flush()
    assert trips == [3]
    assert _stamp(target, "b") == 7
    # written after a's version 1, version 2 replaced it (RedisCache keeps one per model)
    assert target.get("a", "m", "1") is None and (target.get("a", "m", "2") or (0, 0))[1] == 4
    b = target.get("b", "m", "1")
    assert b is not None and b[0].tolist() == [0.0, 0.0]  # the state of stamp 7
    writes.close()
    target.close()


@pytest.mark.integration
def test_redis_keeps_the_larger_stamp_whatever_order_the_writes_arrive_in(
    redis_url: str, redis_namespace: str
) -> None:
    cache = RedisCache(redis_url, Metrics(), namespace=redis_namespace, ttl_s=60)
    client = redis.Redis.from_url(redis_url)
    big = 2**60  # beyond a Lua number's exact integers: compared as decimal strings
    for stamp, kept in [(9, 9), (10, 10), (9, 10), (big + 2, big + 2), (big + 1, big + 2)]:
        cache.set("u", "m", "1", np.full(2, stamp % 100, dtype=np.float32), stamp)
        held = cache.get("u", "m", "1")
        assert held is not None and held[1] == kept
        assert held[0].tolist() == [kept % 100] * 2  # the state came with its stamp
    assert 0 < client.ttl(cache.key("u")) <= 60
    client.close()
    cache.close()


def test_an_unreachable_redis_costs_the_writer_nothing_but_errors_counted() -> None:
    metrics = Metrics()
    cache = TieredCache(
        RedisCache("redis://127.0.0.1:1/0", metrics, timeout_s=0.2), metrics, 100, 60.0, 30.0
    )
    cache.set("u", "m", "1", np.ones(2, dtype=np.float32), stamp=1)
    cache.flush()  # answered as a failed cache call, not raised
    assert cache.get("u", "m", "1") is not None  # memory holds it
    assert _value(metrics, "genrec_cache_errors_total") >= 1
    cache.close()


def test_a_full_queue_and_a_closed_writer_drop_states_and_count_them() -> None:
    metrics = Metrics()
    target = RedisCache("redis://127.0.0.1:1/0", metrics, timeout_s=0.2)
    writes = RedisWriteBehind(target, metrics, interval_s=30.0, max_pending=2)
    state = np.zeros(2, dtype=np.float32)
    writes.put([("a", state, 1), ("b", state, 1), ("c", state, 1)], "m", "1")
    writes.put([("a", state, 2)], "m", "1")  # a newer state of a queued user still fits
    assert _value(metrics, "genrec_cache_writes_dropped_total") == 1
    writes.close()
    writes.put([("d", state, 1)], "m", "1")
    assert _value(metrics, "genrec_cache_writes_dropped_total") == 2
    target.close()


@pytest.mark.integration
def test_storing_a_state_does_not_wait_for_a_redis_write_in_flight(
    redis_url: str, redis_namespace: str
) -> None:
    """The scoring thread calls ``set_many``; a Redis that is slow to answer holds up only
    the writer thread (here its write is held until the test releases it)."""
    import threading

    metrics = Metrics()
    cache = TieredCache(
        RedisCache(redis_url, metrics, namespace=redis_namespace), metrics, 100, 60.0, 0.0
    )
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()
    real_write = cache.redis.write_fields

    def held_write(rows: list[tuple[str, str, str, np.ndarray, int]]) -> None:
        entered.set()
        release.wait(30.0)
        real_write(rows)
        finished.set()

    cache.redis.write_fields = held_write  # type: ignore[method-assign,assignment]
    cache.set("first", "m", "1", np.ones(2, dtype=np.float32), stamp=1)
    assert entered.wait(10.0)  # the writer thread is inside its (held) write
    cache.set("second", "m", "1", np.ones(2, dtype=np.float32), stamp=2)
    assert not finished.is_set()  # set returned while the write was still held
    assert cache.get("second", "m", "1") is not None  # and this process has the state
    release.set()
    cache.close()
    assert finished.is_set()
    reader = RedisCache(redis_url, Metrics(), namespace=redis_namespace)
    assert _stamp(reader, "first") == 1 and _stamp(reader, "second") == 2
    reader.close()


@pytest.mark.integration
def test_a_queued_state_is_the_value_put_not_what_its_array_holds_later(
    redis_url: str, redis_namespace: str
) -> None:
    target = RedisCache(redis_url, Metrics(), namespace=redis_namespace)
    writes = RedisWriteBehind(target, Metrics(), interval_s=30.0)
    batch = np.ones((2, 3), dtype=np.float32)
    writes.put([("u", batch[0], 1)], "m", "1")  # a row view, as a batch's states are
    batch[0] = 7.0  # the caller's array changes before the write
    writes.close()
    held = target.get("u", "m", "1")
    assert held is not None and held[0].tolist() == [1.0, 1.0, 1.0]
    target.close()
