"""The overview's arithmetic over a real registry: counts, rates, quantiles, cache hit rate."""

from __future__ import annotations

import pytest

from app.core.metrics import LATENCY_BUCKETS, Metrics
from app.dashboard.metrics_view import MIN_SPAN_S, overview, rate_chart, read_registry

ROUTE = "/v1/users/{user_id}/recommendations"


def _observe(metrics: Metrics, seconds: float, n: int, status: str = "200") -> None:
    for _ in range(n):
        metrics.request_latency.labels(route=ROUTE, method="GET", status=status).observe(seconds)


def test_counts_errors_and_quantiles_follow_the_buckets() -> None:
    metrics = Metrics()
    _observe(metrics, 0.003, 90)
    _observe(metrics, 0.3, 10, status="503")
    view = overview(read_registry(metrics.registry, at=0.0), None)
    (row,) = view.endpoints
    assert (row.route, row.requests, row.rate) == (ROUTE, 100, None)  # no window yet
    assert row.error_rate == pytest.approx(0.10)
    # histogram_quantile: rank 50 of 90 in (0.0025, 0.005] -> linear inside that bucket.
    low, high = 0.0025, 0.005
    assert low in LATENCY_BUCKETS and high in LATENCY_BUCKETS
    assert row.p50_ms == pytest.approx((low + (high - low) * 50 / 90) * 1000)
    # rank 99: the 9th of the 10 slow ones, in (0.25, 0.5].
    assert row.p99_ms == pytest.approx((0.25 + 0.25 * 9 / 10) * 1000)


def test_rates_are_differences_over_the_window() -> None:
    metrics = Metrics()
    _observe(metrics, 0.01, 5)
    first = read_registry(metrics.registry, at=100.0)
    _observe(metrics, 0.01, 40)
    later = read_registry(metrics.registry, at=100.0 + 2 * MIN_SPAN_S)
    (row,) = overview(later, first).endpoints
    assert row.requests == 45
    assert row.rate == pytest.approx(40 / (2 * MIN_SPAN_S))
    too_soon = read_registry(metrics.registry, at=100.0 + MIN_SPAN_S / 2)
    assert overview(too_soon, first).endpoints[0].rate is None


def test_cache_hit_rate_batches_and_dashboard_routes_hidden() -> None:
    metrics = Metrics()
    metrics.cache_hits.inc(3)
    metrics.cache_misses.inc(1)
    for size in (1, 3, 3, 3):
        metrics.batch_size.labels(model="ease").observe(size)
    metrics.request_latency.labels(route="/dashboard/overview/panel", method="GET", status="200")
    view = overview(read_registry(metrics.registry, at=0.0), None)
    assert view.cache_hit_rate == pytest.approx(0.75)
    assert view.endpoints == []
    (batch,) = view.batches
    assert (batch.model, batch.batches, batch.mean) == ("ease", 4, pytest.approx(10 / 4))
    assert (batch.p50, batch.p99) == (4.0, 4.0)  # sizes 3 fall in the (2, 4] bucket


def test_rate_chart_is_per_interval_between_readings() -> None:
    metrics = Metrics()
    readings = [read_registry(metrics.registry, at=10.0)]
    _observe(metrics, 0.01, 8)
    readings.append(read_registry(metrics.registry, at=12.0))
    _observe(metrics, 0.01, 2, status="500")
    readings.append(read_registry(metrics.registry, at=14.0))
    assert rate_chart(readings[:1]) is None
    chart = rate_chart(readings)
    assert chart is not None
    assert chart["x"] == [-2.0, 0.0]
    assert chart["series"] == {"requests/s": [4.0, 1.0], "5xx/s": [0.0, 1.0]}
