"""An experiment's results over time: per-bucket CTR and conversion rate of each
variant, and the always-valid interval of each variant's CTR difference and
conversion-rate difference with control as they stood at the end of every bucket
(the dashboard's charts).

The lists are the ones ``results.counted_lists`` yields, counted by the same
rules as ``GET /admin/experiments/{name}``; a list and the clicks on it fall in
the bucket in which the list was served. The interval at a bucket's end is the
mSPRT interval of ``results.compare_with_control`` on the cumulative per-user
sums up to that end, so the last point equals what the results say (the
mSPRT interval is valid at every such look, which is why it may be charted).

Buckets are a fixed width chosen from ``WIDTHS_S`` so that the experiment's
span (start to stop, or to ``now`` while it runs) has at most ``MAX_BUCKETS``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.experiments import results, stats
from app.experiments.definitions import ExperimentDef

#: Candidate bucket widths in seconds: 1 s (a just-started experiment) up to a week.
WIDTHS_S = (1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 60


@dataclass
class VariantSeries:
    """One variant's figures per bucket (``None`` where the bucket served it nothing)."""

    impressions: list[int] = field(default_factory=list)
    ctr: list[float | None] = field(default_factory=list)
    conversion_rate: list[float | None] = field(default_factory=list)


@dataclass
class DiffSeries:
    """A variant's rate (CTR, or conversion rate) minus control's, on cumulative counts
    at each bucket end.

    ``ci_low`` / ``ci_high`` are ``None`` while there is no evidence yet (fewer
    than ``min_users`` users on a side, or no variance): the interval is then
    every possible difference, [-1, 1]. ``diff`` is ``None`` until both sides
    have served an item (before that one side has no rate).
    """

    diff: list[float | None] = field(default_factory=list)
    ci_low: list[float | None] = field(default_factory=list)
    ci_high: list[float | None] = field(default_factory=list)
    p_value: list[float] = field(default_factory=list)


@dataclass
class ExperimentSeries:
    start: datetime
    bucket_s: int
    ends: list[datetime]
    variants: dict[str, VariantSeries]
    vs_control: dict[str, DiffSeries]  # the CTR's difference
    conversion_vs_control: dict[str, DiffSeries] = field(default_factory=dict)


def bucket_width(span: timedelta) -> int:
    """The smallest width in ``WIDTHS_S`` giving at most ``MAX_BUCKETS`` buckets over ``span``."""
    seconds = max(span.total_seconds(), 1.0)
    for width in WIDTHS_S:
        if seconds / width <= MAX_BUCKETS:
            return width
    return WIDTHS_S[-1]


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def load_series(
    session: Session,
    experiment: ExperimentDef,
    click_types: Collection[str],
    conversion_types: Collection[str],
    now: datetime | None = None,
    bucket_s: int | None = None,
    alpha: float = 0.05,
    min_users: int = stats.MIN_USERS,
) -> ExperimentSeries:
    """The experiment's figures per bucket, from its start to its stop (or ``now``);
    buckets ``bucket_s`` seconds wide (default: ``bucket_width`` of the span)."""
    start = experiment.created_at
    end = experiment.stopped_at or now or datetime.now(UTC)
    lists = sorted(
        results.counted_lists(session, experiment, click_types, conversion_types),
        key=lambda counted: counted.created_at,
    )
    if lists:  # lists served before the start or after the end still count (clock skew)
        start = min(start, lists[0].created_at)
        end = max(end, lists[-1].created_at)
    width = bucket_s or bucket_width(end - start)
    n_buckets = max(1, math.ceil((end - start).total_seconds() / width))
    if start + timedelta(seconds=width * n_buckets) <= end:
        n_buckets += 1  # the end itself falls in a bucket
    names = [v.name for v in experiment.variants]
    cumulative = {name: results.VariantTotals() for name in names}
    out = ExperimentSeries(
        start=start,
        bucket_s=width,
        ends=[],
        variants={name: VariantSeries() for name in names},
        vs_control={name: DiffSeries() for name in names if name != experiment.control},
        conversion_vs_control={name: DiffSeries() for name in names if name != experiment.control},
    )
    position = 0
    for bucket in range(n_buckets):
        bucket_end = start + timedelta(seconds=width * (bucket + 1))
        counts = {name: [0, 0, 0, 0] for name in names}  # lists, served, clicks, conversions
        while position < len(lists) and lists[position].created_at < bucket_end:
            counted = lists[position]
            position += 1
            results.add_list(cumulative[counted.variant], counted)
            figures = counts[counted.variant]
            figures[0] += 1
            figures[1] += counted.served
            figures[2] += counted.clicks
            figures[3] += counted.conversions
        out.ends.append(bucket_end)
        for name in names:
            lists_n, served, clicks, conversions = counts[name]
            series = out.variants[name]
            series.impressions.append(lists_n)
            series.ctr.append(_rate(clicks, served))
            series.conversion_rate.append(_rate(conversions, served))
        for name in out.vs_control:
            compared = results.compare_with_control(
                cumulative[experiment.control],
                cumulative[name],
                experiment.mixing_sd,
                alpha,
                min_users,
                results.comparisons(experiment),
            )
            _append(out.vs_control[name], compared, "ctr_diff")
            _append(out.conversion_vs_control[name], compared["conversion"], "conversion_rate_diff")
    return out


def _append(diff: DiffSeries, compared: dict[str, Any], diff_key: str) -> None:
    """One bucket end's comparison (``results.compare_with_control``'s) onto its series."""
    low, high = compared["ci95"] or (-1.0, 1.0)
    evidence = compared["p_value"] < 1.0 or (low, high) != (-1.0, 1.0)
    diff.diff.append(compared[diff_key])
    diff.ci_low.append(low if evidence else None)
    diff.ci_high.append(high if evidence else None)
    diff.p_value.append(compared["p_value"])
