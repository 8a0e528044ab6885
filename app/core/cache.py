"""User-state cache: Redis when configured, an in-process LRU otherwise.

What is cached is a user's state vector (the model's ``user_state`` row, (D,)
float32) under the model name and version, together with a *stamp* of the
logged interactions used to compute it (``app.serving.state.log_stamp``: the
newest id and the row count; 0 when none). Serving recomputes whenever the
database's stamp differs. Nothing is ever deleted from the cache for
freshness (an interaction write does not touch it: ``app.serving.interactions``);
an entry older than the log is simply not used, and the read that finds it so
stores the refolded state over it. The one deletion is ``forget``: an erased user's
entries, which must not outlive their data (``app.users.sync``).

With Redis, each process also keeps its most recently used states in memory in
front of it (``TieredCache``): every batch reads the log anyway to check the
stamp, so a state held in memory is exactly as safe as one read from Redis,
and a hit there saves the round trip (with the read engine, a prediction
scored alone fell from 852-1,046 to 781-827 us of CPU, in process,
docs/data/serve-2026-12-04-cache/run.sh). Redis stays the shared tier: what one replica
computed, the others and a restarted process find there.

Redis layout: hash ``{ns}:state:{user_id}``, field ``{model}:{version}`` =
raw float32 bytes and field ``{model}:{version}:stamp`` = decimal stamp. The key
carries a TTL, renewed by each write of a state; a write whose stamp is smaller than
the one Redis holds for that field is skipped (``RedisCache.write_fields``).

Redis is a cache: every error is answered as a miss, counted in
``genrec_cache_errors_total``, logged once per burst, and never fails a request.
A circuit breaker (``app.core.breaker``) stops calling a Redis that keeps
failing or hanging, so a frozen Redis costs one timeout per (growing) interval
rather than one per request; skipped calls are misses too (a skipped write
of a state only costs the next read its recomputation).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from app.core.breaker import BreakerState, CircuitBreaker
from app.core.cache_writes import WRITE_BEHIND_S, RedisWriteBehind
from app.core.metrics import Metrics

log = logging.getLogger(__name__)

CachedState = tuple[np.ndarray, int]  # ((D,) float32 state, stamp)
CacheEntry = tuple[str, np.ndarray, int]  # (user id, (D,) float32 state, stamp)


class StateCache(Protocol):
    """What serving needs from a cache; both implementations satisfy it."""

    #: What ``/readyz`` and the dashboard call it: "memory", "redis" or "redis+memory".
    kind: str

    def get(self, user_id: str, model: str, version: str) -> CachedState | None: ...

    def set(
        self, user_id: str, model: str, version: str, state: np.ndarray, stamp: int
    ) -> None: ...

    def get_many(
        self, user_ids: Sequence[str], model: str, version: str
    ) -> list[CachedState | None]: ...

    def set_many(self, entries: Sequence[CacheEntry], model: str, version: str) -> None: ...

    def get_newest(self, user_id: str, model: str, version: str) -> CachedState | None:
        """The entry built from the most log rows this cache holds, for a read that cannot
        check stamps against the log (degraded mode); ``get`` for a single tier."""
        ...

    def forget(self, user_ids: Sequence[str]) -> bool:
        """Drop every entry of ``user_ids`` (all models and versions): their data was
        erased (``app.serving.erased``). Never raises, like every cache call, but says
        whether every tier dropped them: False when Redis failed or its breaker is open,
        so the erasure poll retries rather than leave the states there until their TTL."""
        ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


def _field(model: str, version: str) -> str:
    return f"{model}:{version}"


class MemoryCache:
    """Thread-safe LRU over users (each user holds its model/version entries)."""

    kind = "memory"

    def __init__(
        self, metrics: Metrics | None, max_users: int = 100_000, ttl_s: float = 3600.0
    ) -> None:
        self._metrics = metrics  # None: the caller counts (``TieredCache``'s memory tier)
        self._max_users = max_users
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._users: OrderedDict[str, dict[str, tuple[np.ndarray, int, float]]] = OrderedDict()

    def get(self, user_id: str, model: str, version: str) -> CachedState | None:
        with self._lock:
            entry = self._users.get(user_id, {}).get(_field(model, version))
            if entry is None or entry[2] < time.monotonic():
                if self._metrics is not None:
                    self._metrics.cache_misses.inc()
                return None
            self._users.move_to_end(user_id)
        if self._metrics is not None:
            self._metrics.cache_hits.inc()
        return entry[0], entry[1]

    def get_many(
        self, user_ids: Sequence[str], model: str, version: str
    ) -> list[CachedState | None]:
        return [self.get(user_id, model, version) for user_id in user_ids]

    def get_newest(self, user_id: str, model: str, version: str) -> CachedState | None:
        return self.get(user_id, model, version)

    def set_many(self, entries: Sequence[CacheEntry], model: str, version: str) -> None:
        for user_id, state, stamp in entries:
            self.set(user_id, model, version, state, stamp)

    def set(self, user_id: str, model: str, version: str, state: np.ndarray, stamp: int) -> None:
        value = np.array(state, dtype=np.float32, copy=True).reshape(-1)
        value.setflags(write=False)  # shared between requests: nobody may mutate it
        with self._lock:
            fields = self._users.setdefault(user_id, {})
            fields[_field(model, version)] = (value, int(stamp), time.monotonic() + self._ttl_s)
            self._users.move_to_end(user_id)
            while len(self._users) > self._max_users:
                self._users.popitem(last=False)

    def forget(self, user_ids: Sequence[str]) -> bool:
        with self._lock:
            for user_id in user_ids:
                self._users.pop(user_id, None)
        return True

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        with self._lock:
            self._users.clear()


#: KEYS: one user hash per row; ARGV: the TTL, then (field, state bytes, stamp) per row.
#: A row is written (HSET of the state and its stamp, then the key's TTL renewed) unless
#: the hash holds a larger stamp for the field; stamps are compared as decimal strings,
#: by length first, since Lua's numbers are doubles and a stamp can exceed 2**53. Atomic,
#: like the MULTI/EXEC it replaces: no key is left without its TTL. A written row also
#: drops the fields of the model's other versions: each write renews the key's TTL, so an
#: active user's hash kept a state for every version ever served to them (one more per
#: retrain, for good). A user served two versions at once (replicas mid-reload) pays a
#: refold, never a stale answer: every state is checked against the log's stamp.
_WRITE_NEWER = """
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  local field, state, stamp = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  local held = redis.call('HGET', key, field .. ':stamp')
  if not held or #held < #stamp or (#held == #stamp and held <= stamp) then
    redis.call('HSET', key, field, state, field .. ':stamp', stamp)
    redis.call('EXPIRE', key, ttl)
    local model = string.match(field, '^(.*):[^:]*$') .. ':'
    for _, name in ipairs(redis.call('HKEYS', key)) do
      if string.sub(name, 1, #model) == model and name ~= field and name ~= field .. ':stamp' then
        redis.call('HDEL', key, name)
      end
    end
  end
end
return #KEYS
"""


class RedisCache:
    """Redis hash per user; failures degrade to misses (see module docstring).

    After ``failure_threshold`` consecutive errors the breaker keeps Redis off
    for ``backoff_s``, doubling after each failed probe up to ``max_backoff_s``,
    so a dead or frozen Redis costs one timeout per interval, not one per request.
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        metrics: Metrics,
        namespace: str = "genrec",
        ttl_s: int = 3600,
        timeout_s: float = 0.25,
        backoff_s: float = 0.5,
        max_backoff_s: float = 15.0,
        failure_threshold: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis

        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        self._write_newer = self._client.register_script(_WRITE_NEWER)
        self._metrics = metrics
        self._namespace = namespace
        self._last_error: Exception | None = None
        self._announced = False  # the outage was logged
        self._ttl_s = ttl_s
        self.breaker = CircuitBreaker(
            failure_threshold=failure_threshold,
            base_interval_s=backoff_s,
            max_interval_s=max_backoff_s,
            clock=clock,
            on_change=self._breaker_changed,
        )
        metrics.cache_breaker_state.set(BreakerState.CLOSED)

    def key(self, user_id: str) -> str:
        """Redis key of the user's hash (tests read it)."""
        return f"{self._namespace}:state:{user_id}"

    def get(self, user_id: str, model: str, version: str) -> CachedState | None:
        field = _field(model, version)
        raw = self._call(lambda: self._client.hmget(self.key(user_id), [field, f"{field}:stamp"]))
        if not raw or raw[0] is None or raw[1] is None:
            self._metrics.cache_misses.inc()
            return None
        self._metrics.cache_hits.inc()
        return np.frombuffer(raw[0], dtype=np.float32), int(raw[1])

    def get_newest(self, user_id: str, model: str, version: str) -> CachedState | None:
        return self.get(user_id, model, version)

    def get_many(
        self, user_ids: Sequence[str], model: str, version: str
    ) -> list[CachedState | None]:
        """One round trip for a micro-batch of users (a pipeline of HMGETs)."""
        field = _field(model, version)

        def read() -> Any:
            pipe = self._client.pipeline(transaction=False)
            for user_id in user_ids:
                pipe.hmget(self.key(user_id), [field, f"{field}:stamp"])
            return pipe.execute()

        rows = self._call(read) or [None] * len(user_ids)
        out: list[CachedState | None] = []
        for raw in rows:
            if not raw or raw[0] is None or raw[1] is None:
                out.append(None)
            else:
                out.append((np.frombuffer(raw[0], dtype=np.float32), int(raw[1])))
        hits = sum(1 for entry in out if entry is not None)
        self._metrics.cache_hits.inc(hits)
        self._metrics.cache_misses.inc(len(out) - hits)
        return out

    def set(self, user_id: str, model: str, version: str, state: np.ndarray, stamp: int) -> None:
        self.set_many([(user_id, state, stamp)], model, version)

    def set_many(self, entries: Sequence[CacheEntry], model: str, version: str) -> None:
        """One round trip for a micro-batch's new states (``write_fields``)."""
        self.write_fields(
            [(user_id, model, version, state, stamp) for user_id, state, stamp in entries]
        )

    def write_fields(self, rows: Sequence[tuple[str, str, str, np.ndarray, int]]) -> None:
        """(user id, model, version, state, stamp) rows in one round trip (``_WRITE_NEWER``).

        A row is written only where Redis holds no larger stamp for its field: with
        writes arriving late (``app.core.cache_writes``) or from several replicas, an
        older state must not replace a newer one, which degraded reads (``get_newest``)
        would then serve.
        """
        if not rows:
            return
        keys: list[str] = []
        args: list[str | bytes | int] = [self._ttl_s]
        for user_id, model, version, state, stamp in rows:
            keys.append(self.key(user_id))
            payload = np.ascontiguousarray(state, dtype=np.float32).reshape(-1).tobytes()
            args += [_field(model, version), payload, str(int(stamp))]
        self._call(lambda: self._write_newer(keys=keys, args=args))

    def forget(self, user_ids: Sequence[str]) -> bool:
        """One DEL of the users' hashes (every model and version at once); whether it ran
        (``_call`` answers None for a failure or an open breaker, DEL a count)."""
        if not user_ids:
            return True
        keys = [self.key(user_id) for user_id in user_ids]
        return self._call(lambda: self._client.delete(*keys)) is not None

    def ping(self) -> bool:
        """Reachability for ``/readyz``; False at once while the breaker is open."""
        return bool(self._call(lambda: self._client.ping()))

    def close(self) -> None:
        self._client.close()

    def _call(self, op: Callable[[], Any]) -> Any:
        """Run one Redis operation unless the breaker is open; any failure -> None, counted."""
        if not self.breaker.allow():
            self._metrics.cache_bypassed.inc()
            return None
        try:
            result = op()
        except Exception as exc:  # every Redis failure is a cache miss, by design
            self._metrics.cache_errors.inc()
            self._last_error = exc
            self.breaker.failure()
            return None
        self.breaker.success()
        return result

    def _breaker_changed(self, state: BreakerState) -> None:
        """Gauge on every transition; one log line when an outage starts and one when it ends."""
        self._metrics.cache_breaker_state.set(state)
        if state is BreakerState.OPEN:
            self._metrics.cache_breaker_opened.inc()
            if not self._announced:  # a failed probe reopens silently
                self._announced = True
                log.warning(
                    "redis cache unavailable, serving without it (probed again after "
                    "%.1f s, then at growing intervals): %s",
                    self.breaker.interval_s,
                    self._last_error,
                )
        elif state is BreakerState.CLOSED and self._announced:
            self._announced = False
            log.info("redis cache reachable again")


class TieredCache:
    """The process's in-memory LRU in front of Redis (module docstring).

    Reads try memory first and ask Redis for the rest in one round trip, keeping
    what it had; writes go to memory at once and to Redis from a writer thread a
    moment later (``app.core.cache_writes``). Another replica's refolded state does not
    reach this memory, and need not: a state is used only while its stamp
    matches the log. Hits in either tier count as hits;
    ``genrec_cache_local_hits_total`` says how many Redis never saw.
    """

    kind = "redis+memory"

    def __init__(
        self,
        redis: RedisCache,
        metrics: Metrics,
        max_users: int,
        ttl_s: float,
        write_behind_s: float = WRITE_BEHIND_S,
    ) -> None:
        self.redis = redis
        self.local = MemoryCache(None, max_users=max_users, ttl_s=ttl_s)
        self.writes = RedisWriteBehind(redis, metrics, interval_s=write_behind_s)
        self._metrics = metrics

    @property
    def breaker(self) -> CircuitBreaker:
        """The Redis tier's circuit breaker (the memory tier cannot fail)."""
        return self.redis.breaker

    def get(self, user_id: str, model: str, version: str) -> CachedState | None:
        return self.get_many([user_id], model, version)[0]

    def get_many(
        self, user_ids: Sequence[str], model: str, version: str
    ) -> list[CachedState | None]:
        out = self.local.get_many(user_ids, model, version)
        local_hits = len(out) - out.count(None)
        if local_hits:
            self._metrics.cache_hits.inc(local_hits)
            self._metrics.cache_local_hits.inc(local_hits)
        missing = [b for b, entry in enumerate(out) if entry is None]
        if missing:
            found = self.redis.get_many([user_ids[b] for b in missing], model, version)
            for b, entry in zip(missing, found, strict=True):
                out[b] = entry
                if entry is not None:
                    self.local.set(user_ids[b], model, version, entry[0], entry[1])
        return out

    def get_newest(self, user_id: str, model: str, version: str) -> CachedState | None:
        """Both tiers, and the entry with the larger stamp.

        ``get`` trusts memory because the caller checks the stamp against the log;
        in degraded mode it cannot, and memory may hold a state from before another
        replica's write that Redis already has the refolded state of. A stamp grows
        with every row the log gains (``app.serving.state.log_stamp``), so the
        larger one includes more of the user's history.
        """
        local = self.local.get(user_id, model, version)
        remote = self.redis.get(user_id, model, version)
        if local is None or (remote is not None and remote[1] > local[1]):
            return remote
        return local

    def set(self, user_id: str, model: str, version: str, state: np.ndarray, stamp: int) -> None:
        self.set_many([(user_id, state, stamp)], model, version)

    def set_many(self, entries: Sequence[CacheEntry], model: str, version: str) -> None:
        """Memory now, Redis from the writer thread (``app.core.cache_writes``)."""
        self.local.set_many(entries, model, version)
        self.writes.put(entries, model, version)

    def flush(self) -> None:
        """Write the states still on their way to Redis now."""
        self.writes.flush()

    def forget(self, user_ids: Sequence[str]) -> bool:
        """Both tiers, and the states still on their way to Redis; whether Redis dropped
        them (memory always does)."""
        self.local.forget(user_ids)
        self.writes.discard(user_ids)
        return self.redis.forget(user_ids)

    def ping(self) -> bool:
        return self.redis.ping()

    def close(self) -> None:
        self.writes.close()
        self.local.close()
        self.redis.close()


def make_cache(
    redis_url: str | None,
    metrics: Metrics,
    namespace: str = "genrec",
    ttl_s: int = 3600,
    max_entries: int = 100_000,
    local_max_entries: int = 10_000,
) -> StateCache:
    """For a URL: Redis, behind an in-memory tier of ``local_max_entries`` users unless that
    is 0; without one, the in-process LRU of ``max_entries`` users."""
    if redis_url:
        redis = RedisCache(redis_url, metrics, namespace=namespace, ttl_s=ttl_s)
        if local_max_entries <= 0:
            return redis
        return TieredCache(redis, metrics, max_users=local_max_entries, ttl_s=float(ttl_s))
    return MemoryCache(metrics, max_users=max_entries, ttl_s=float(ttl_s))
