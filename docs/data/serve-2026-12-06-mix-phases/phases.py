"""Serve genrec with wall and thread-CPU timers on the scoring path's phases.

An experiment wrapper, not the product: it wraps ``process_batch``, ``rank_batch``,
``predict_batch``, ``ad_hoc_contexts``, ``LogReader.read_many``, ``_cached_states``,
``compute_states``, ``TieredCache.set_many`` and the interaction writer's
``_write_group``, then runs ``python -m app.cli`` with the given arguments. SIGUSR1
clears the timers, SIGUSR2 writes them to ``$PHASES_OUT``: per thread and phase,
calls, mean wall and mean thread CPU. ``phases.sh`` drives it.
"""

from __future__ import annotations

import collections
import os
import runpy
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import app.core.cache as cache
import app.serving.batcher as batcher
import app.serving.interactions as interactions
import app.serving.state as state

TIMERS: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
LOCK = threading.Lock()


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            key = f"{threading.current_thread().name[:16]}:{name}"
            with LOCK:
                t = TIMERS[key]
                t[0] += 1
                t[1] += time.perf_counter() - wall
                t[2] += time.thread_time() - cpu

    return wrapper


def dump(*_: object) -> None:
    with open(os.environ.get("PHASES_OUT", "phases.txt"), "w") as out, LOCK:
        for key, (n, wall, cpu) in sorted(TIMERS.items()):
            out.write(
                f"{key:45s} n={n:7.0f} wall={1000 * wall / n:7.3f}ms cpu={1000 * cpu / n:7.3f}ms\n"
            )


def reset(*_: object) -> None:
    with LOCK:
        TIMERS.clear()


batcher.process_batch = timed("process_batch", batcher.process_batch)
batcher.rank_batch = timed("rank_batch", batcher.rank_batch)
batcher.predict_batch = timed("predict_batch", batcher.predict_batch)
batcher.ad_hoc_contexts = timed("ad_hoc_contexts", batcher.ad_hoc_contexts)
state.LogReader.read_many = timed("read_many", state.LogReader.read_many)  # type: ignore[method-assign]
state._cached_states = timed("cached_states", state._cached_states)
state.compute_states = timed("compute_states", state.compute_states)
cache.TieredCache.set_many = timed("cache_set_many", cache.TieredCache.set_many)  # type: ignore[method-assign]
interactions.InteractionLogger._write_group = timed(  # type: ignore[method-assign]
    "write_group", interactions.InteractionLogger._write_group
)
signal.signal(signal.SIGUSR1, reset)
signal.signal(signal.SIGUSR2, dump)
sys.argv = ["app.cli", *sys.argv[1:]]
runpy.run_module("app.cli", run_name="__main__")
