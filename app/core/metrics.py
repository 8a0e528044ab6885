"""Prometheus metrics of one app instance, in its own registry.

A registry per app (instead of the global default) keeps test apps from
sharing counters and lets ``/metrics`` expose exactly this service's series.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


@dataclass
class Metrics:
    """The service's series; pass the object to whoever counts."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.request_latency = Histogram(
            "genrec_request_seconds",
            "HTTP request latency by route template, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_hits = Counter("genrec_cache_hits", "user-state cache hits", registry=r)
        self.cache_misses = Counter("genrec_cache_misses", "user-state cache misses", registry=r)
        self.cache_local_hits = Counter(
            "genrec_cache_local_hits",
            "user-state cache hits served from the process's memory in front of Redis",
            registry=r,
        )
        self.cache_errors = Counter(
            "genrec_cache_errors", "cache backend errors (answered as misses)", registry=r
        )
        self.cache_breaker_state = Gauge(
            "genrec_cache_breaker_state",
            "Redis circuit breaker: 0 closed (used), 1 open (bypassed), 2 half-open (probing)",
            registry=r,
        )
        self.cache_breaker_opened = Counter(
            "genrec_cache_breaker_opened", "times the Redis circuit breaker opened", registry=r
        )
        self.cache_bypassed = Counter(
            "genrec_cache_bypassed",
            "cache calls skipped while the Redis breaker was open (answered as misses)",
            registry=r,
        )
        self.cache_writes_dropped = Counter(
            "genrec_cache_writes_dropped",
            "states not written to Redis: the write-behind queue was full or shutting down",
            registry=r,
        )
        self.fallbacks = Counter(
            "genrec_fallback", "recommendations answered by the popularity fallback", registry=r
        )
        self.prediction_fallbacks = Counter(
            "genrec_prediction_fallback",
            "predicted ratings answered by the baseline (unknown item or a user with no ratings)",
            registry=r,
        )
        self.model_info = Gauge(
            "genrec_model_loaded",
            "1 for the model version each loaded model currently serves",
            ["model", "version"],
            registry=r,
        )
        self.model_load_errors = Counter(
            "genrec_model_load_errors",
            "versions refused at load (corrupt, unknown format, scorer error)",
            ["model"],
            registry=r,
        )

        self.batch_size = Histogram(
            "genrec_batch_size",
            "requests scored together in one batch (micro-batching): lists, predictions and "
            "similar lists",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.failed_jobs = Counter(
            "genrec_batch_failed_jobs",
            "requests that failed when scored alone after their batch failed (the rest of"
            " the batch is answered)",
            ["model"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "genrec_batch_seconds",
            "time to score, mask and top-k one batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ann_rows = Counter(
            "genrec_ann_rows",
            "ranking requests answered from approximate-retrieval candidates, re-scored exactly",
            ["model"],
            registry=r,
        )
        self.ann_fallbacks = Counter(
            "genrec_ann_fallback",
            "ranking requests of an indexed model scored exactly instead: the masks left fewer "
            "than k candidates, or a diversity rule's first pool could not fill the list "
            "(too_few_candidates), they needed too many (too_many_masked), or a boost plan had "
            "too many distinct offsets (rules)",
            ["model", "reason"],
            registry=r,
        )
        self.degraded = Counter(
            "genrec_degraded",
            "reads answered without the database (artifact history + cached state only)",
            ["endpoint"],
            registry=r,
        )
        self.database_errors = Counter(
            "genrec_database_errors",
            "database operations that failed (the service answers degraded or 503)",
            ["operation"],
            registry=r,
        )
        self.impressions_written = Counter(
            "genrec_impressions_written", "impressions written to the database", registry=r
        )
        self.impressions_dropped = Counter(
            "genrec_impressions_dropped",
            "impressions not recorded: the queue was full, or their batch's write failed",
            ["reason"],
            registry=r,
        )
        self.attribution_refused = Counter(
            "genrec_attribution_refused",
            "logged events whose recommendation_id was not attributed to its impression: "
            "none such (unknown), another user's list (other_user), or an item the list did "
            "not show (item_not_shown); an unknown one may later be attributed late "
            "(genrec_attribution_late)",
            ["reason"],
            registry=r,
        )
        self.attribution_late = Counter(
            "genrec_attribution_late",
            "logged events attributed after they were written, to a list written after "
            "them: by the list's replica as it wrote the list (list_writer), or by the "
            "event's replica looking again after its insert (event_writer); events that "
            "named the list (rule=named) or were matched by the window (rule=window)",
            ["by", "rule"],
            registry=r,
        )
        self.api_key_refused = Counter(
            "genrec_api_key_refused",
            "/v1 requests refused by the API-key check (GENREC_API_KEYS): no bearer key "
            "(missing), a wrong one (invalid), or a locked-out address whose credential was "
            "no API key (locked_out)",
            ["reason"],
            registry=r,
        )
        self.body_timeouts = Counter(
            "genrec_body_timeouts",
            "requests answered 408 because their body stopped arriving for "
            "GENREC_BODY_TIMEOUT_S (the connection closed)",
            registry=r,
        )
        self.interaction_group_size = Histogram(
            "genrec_interaction_group_size",
            "interaction-write requests committed in one write (group commit)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.impression_batch_size = Histogram(
            "genrec_impression_batch_size",
            "impressions per INSERT of the background writer",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.short_lists = Counter(
            "genrec_short_lists",
            "lists answered with fewer than k items (rules, filters or exclusions left fewer)",
            ["endpoint"],
            registry=r,
        )

        labels = ["experiment", "variant", "model", "version"]
        self.experiment_impressions = Counter(
            "genrec_experiment_impressions",
            "lists served inside an A/B experiment, per variant and the model version serving it",
            labels,
            registry=r,
        )
        self.experiment_items_served = Counter(
            "genrec_experiment_items_served",
            "items shown inside an A/B experiment (CTR's denominator)",
            labels,
            registry=r,
        )
        self.experiment_clicks = Counter(
            "genrec_experiment_clicks",
            "click events attributed to an experiment's lists (GENREC_EXPERIMENT_CLICK_TYPES)",
            labels,
            registry=r,
        )
        self.experiment_conversions = Counter(
            "genrec_experiment_conversions",
            "conversion events attributed to an experiment's lists "
            "(GENREC_EXPERIMENT_CONVERSION_TYPES)",
            labels,
            registry=r,
        )
        self.experiment_latency = Histogram(
            "genrec_experiment_serving_seconds",
            "server-side time to produce an experiment's list, per variant",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.experiment_fallbacks = Counter(
            "genrec_experiment_fallbacks",
            "requests whose variant could not be served: answered by the default model, "
            "outside the experiment",
            ["experiment", "variant"],
            registry=r,
        )

    def count_experiment_impression(
        self,
        experiment: str,
        variant: str,
        model: str,
        version: str,
        items: int,
        latency_ms: float | None,
    ) -> None:
        """One list served in ``variant`` of ``experiment``."""
        labels = {"experiment": experiment, "variant": variant, "model": model, "version": version}
        self.experiment_impressions.labels(**labels).inc()
        self.experiment_items_served.labels(**labels).inc(items)
        if latency_ms is not None:
            self.experiment_latency.labels(**labels).observe(latency_ms / 1000)

    def set_loaded_version(self, model: str, version: str, previous: str | None) -> None:
        """Point the info gauge at ``version`` (and clear the swapped-out one)."""
        if previous is not None and previous != version:
            self.model_info.remove(model, previous)
        self.model_info.labels(model=model, version=version).set(1)
