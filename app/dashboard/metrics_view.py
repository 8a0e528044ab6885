"""The overview's numbers, read from this app's own Prometheus registry.

The dashboard shows what ``/metrics`` exports, computed the way a Prometheus
query would: rates are counter differences over a recent window (the
``Sampler`` keeps the registry readings of the last minute, one per overview
poll), and p50/p99 come from the histogram buckets by the linear
interpolation of PromQL's ``histogram_quantile``. Numbers are for this
process only; a fleet's totals belong to Prometheus.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

WINDOW_S = 60.0
#: Rates need readings at least this far apart (a first poll's 0.1 s would make noise).
MIN_SPAN_S = 5.0
#: Routes of the dashboard's and the API docs' own traffic (pages, polls, static files, the
#: OpenAPI document): one "other" row of the table, and not in the request-rate chart, which
#: is the serving API's (``app.core.middleware`` labels a static file by its mount, so these
#: no longer pass as "unmatched").
OTHER_ROUTES = ("/dashboard", "/docs", "/openapi.json", "/redoc")
OTHER_LABEL = "other (dashboard, docs, static files)"

# (route, method) -> status -> cumulative bucket counts by upper bound, plus count and sum
Key = tuple[str, str]


@dataclass
class Histogram:
    """One histogram series: cumulative counts per upper bound (``+Inf`` last), count, sum."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def add(self, other: Histogram) -> None:
        for bound, value in other.buckets.items():
            self.buckets[bound] = self.buckets.get(bound, 0.0) + value
        self.count += other.count
        self.total += other.total

    def minus(self, older: Histogram | None) -> Histogram:
        if older is None:
            return self
        return Histogram(
            {b: v - older.buckets.get(b, 0.0) for b, v in self.buckets.items()},
            self.count - older.count,
            self.total - older.total,
        )

    def bound(self, q: float) -> float | None:
        """The upper bound of the bucket holding rank q·count (for counts such as batch
        sizes, where an interpolated 0.5 would name a size that cannot occur)."""
        if self.count <= 0:
            return None
        for bound in sorted(self.buckets):
            if self.buckets[bound] >= q * self.count:
                return bound
        return None

    def quantile(self, q: float) -> float | None:
        """PromQL's ``histogram_quantile``: linear within the bucket holding rank q·count."""
        if self.count <= 0:
            return None
        rank = q * self.count
        lower, below = 0.0, 0.0
        for bound in sorted(self.buckets):
            cumulative = self.buckets[bound]
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower  # beyond the last finite bucket: its bound is all we know
                inside = cumulative - below
                return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = bound, cumulative
        return lower


@dataclass
class Reading:
    """The registry at one instant, reduced to what the overview shows."""

    at: float
    requests: dict[Key, dict[str, Histogram]] = field(default_factory=dict)
    batches: dict[str, Histogram] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)


def read_registry(registry: CollectorRegistry, at: float | None = None) -> Reading:
    """One pass over ``registry.collect()``."""
    reading = Reading(at=time.monotonic() if at is None else at)
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if family.name == "genrec_request_seconds":
                key = (labels.get("route", "?"), labels.get("method", "?"))
                series = reading.requests.setdefault(key, {}).setdefault(
                    labels.get("status", "?"), Histogram()
                )
                _histogram_sample(series, sample.name, labels, sample.value)
            elif family.name == "genrec_batch_size":
                series = reading.batches.setdefault(labels.get("model", "?"), Histogram())
                _histogram_sample(series, sample.name, labels, sample.value)
            elif family.type == "counter" and sample.name.endswith("_total"):
                name = sample.name
                for label in sorted(labels):
                    name += f"|{label}={labels[label]}"
                reading.counters[name] = reading.counters.get(name, 0.0) + sample.value
            elif family.type == "gauge" and not labels:
                reading.gauges[sample.name] = sample.value
    return reading


def _histogram_sample(series: Histogram, name: str, labels: dict[str, str], value: float) -> None:
    if name.endswith("_bucket"):
        series.buckets[float(labels["le"])] = value
    elif name.endswith("_count"):
        series.count = value
    elif name.endswith("_sum"):
        series.total = value


class Sampler:
    """Registry readings of the last ``WINDOW_S`` seconds, oldest first (thread-safe)."""

    def __init__(self, registry: CollectorRegistry, window_s: float = WINDOW_S) -> None:
        self.registry = registry
        self.window_s = window_s
        self._readings: deque[Reading] = deque()
        self._lock = threading.Lock()

    def sample(self) -> tuple[Reading, Reading | None, list[Reading]]:
        """A new reading, the oldest one still inside the window (None on the first), and
        every reading of the window, oldest first (the new one last)."""
        now = read_registry(self.registry)
        with self._lock:
            while self._readings and now.at - self._readings[0].at > self.window_s:
                self._readings.popleft()
            oldest = self._readings[0] if self._readings else None
            self._readings.append(now)
            window = list(self._readings)
        return now, oldest, window


def is_other(route: str) -> bool:
    """A route of the dashboard's or the docs' own traffic, not of the serving API."""
    return route.startswith(OTHER_ROUTES)


def _api_requests(reading: Reading) -> tuple[float, float]:
    """(all, 5xx) request counts of the API's routes (unknown paths included)."""
    total = errors = 0.0
    for (route, _), by_status in reading.requests.items():
        if is_other(route):
            continue
        for status, series in by_status.items():
            total += series.count
            if status.startswith("5"):
                errors += series.count
    return total, errors


def rate_chart(window: list[Reading]) -> dict[str, object] | None:
    """Requests and 5xx answers per second between consecutive readings, for uPlot
    (x: seconds before the newest reading). None until there are two readings."""
    if len(window) < 2:
        return None
    newest = window[-1].at
    x: list[float] = []
    requests: list[float] = []
    errors: list[float] = []
    for older, newer in itertools.pairwise(window):
        span = newer.at - older.at
        if span <= 0:
            continue
        (t0, e0), (t1, e1) = _api_requests(older), _api_requests(newer)
        x.append(round(newer.at - newest, 1))
        requests.append(round((t1 - t0) / span, 3))
        errors.append(round((e1 - e0) / span, 3))
    return {
        "title": "requests per second",
        "x_label": "seconds ago",
        "y_label": "requests per second",
        "x": x,
        "series": {"requests/s": requests, "5xx/s": errors},
    }


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class EndpointRow:
    route: str
    method: str
    requests: int
    rate: float | None  # requests per second over the window
    error_rate: float | None  # share of 5xx answers since start
    p50_ms: float | None
    p99_ms: float | None
    window_p99_ms: float | None
    grouped: bool = False  # the one row of the dashboard's and docs' own traffic


@dataclass(frozen=True)
class BatchRow:
    model: str
    batches: int
    mean: float | None
    p50: float | None  # upper bound of the bucket: "at most"
    p99: float | None


@dataclass(frozen=True)
class Overview:
    window_s: float | None
    endpoints: list[EndpointRow]
    batches: list[BatchRow]
    cache_hits: float
    cache_misses: float
    cache_hit_rate: float | None
    cache_breaker: str
    impressions_written: float
    impressions_dropped: float
    database_errors: float
    fallbacks: float


BREAKER_STATES = {0.0: "closed (Redis used)", 1.0: "open (Redis bypassed)", 2.0: "half-open"}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _row(
    route: str,
    method: str,
    merged: Histogram,
    before: Histogram,
    errors: float,
    span: float,
    windowed: bool,
    grouped: bool = False,
) -> EndpointRow:
    recent = merged.minus(before if windowed else None)
    return EndpointRow(
        route=route,
        method=method,
        requests=int(merged.count),
        rate=recent.count / span if span > 0 else None,
        error_rate=errors / merged.count if merged.count else None,
        p50_ms=_ms(merged.quantile(0.5)),
        p99_ms=_ms(merged.quantile(0.99)),
        window_p99_ms=_ms(recent.quantile(0.99)) if span > 0 else None,
        grouped=grouped,
    )


def overview(now: Reading, oldest: Reading | None) -> Overview:
    """The overview's rows: cumulative since start, and rates over ``now - oldest``."""
    span = now.at - oldest.at if oldest is not None else 0.0
    if span < MIN_SPAN_S:
        span = 0.0
    endpoints: list[EndpointRow] = []
    # The dashboard's own polls and files would fill the table: summed into one last row.
    other, other_before, other_errors = Histogram(), Histogram(), 0.0
    for (route, method), by_status in sorted(now.requests.items()):
        merged = Histogram()
        errors = 0.0
        for status, series in by_status.items():
            merged.add(series)
            if status.startswith("5"):
                errors += series.count
        before = Histogram()
        if oldest is not None:
            for series in oldest.requests.get((route, method), {}).values():
                before.add(series)
        if is_other(route):
            other.add(merged)
            other_before.add(before)
            other_errors += errors
            continue
        endpoints.append(_row(route, method, merged, before, errors, span, oldest is not None))
    if other.count:
        endpoints.append(
            _row(
                OTHER_LABEL,
                "any",
                other,
                other_before,
                other_errors,
                span,
                oldest is not None,
                True,
            )
        )
    batches = [
        BatchRow(
            model=model,
            batches=int(series.count),
            mean=series.total / series.count if series.count else None,
            p50=series.bound(0.5),
            p99=series.bound(0.99),
        )
        for model, series in sorted(now.batches.items())
    ]
    counters = now.counters
    hits = counters.get("genrec_cache_hits_total", 0.0)
    misses = counters.get("genrec_cache_misses_total", 0.0)
    return Overview(
        window_s=span if span > 0 else None,
        endpoints=endpoints,
        batches=batches,
        cache_hits=hits,
        cache_misses=misses,
        cache_hit_rate=hits / (hits + misses) if hits + misses else None,
        cache_breaker=BREAKER_STATES.get(now.gauges.get("genrec_cache_breaker_state", 0.0), "?"),
        impressions_written=counters.get("genrec_impressions_written_total", 0.0),
        impressions_dropped=sum(
            v for k, v in counters.items() if k.startswith("genrec_impressions_dropped_total")
        ),
        database_errors=sum(
            v for k, v in counters.items() if k.startswith("genrec_database_errors_total")
        ),
        fallbacks=counters.get("genrec_fallback_total", 0.0),
    )
