"""An experiment's results: per-variant counts and rates from the impressions and
the events attributed to them, and each variant's comparison with control.

Definitions (docs/experiments.md):

* users: distinct units with at least one impression in the variant, a unit being the
  list's user, else its session (an ad-hoc request's ``session_id``, the id it was
  assigned by): a session is never the same unit as a user whose id is the same string.
  impressions: lists served; items served: the lists' lengths summed.
* a click is an attributed event whose type is a click type
  (``GENREC_EXPERIMENT_CLICK_TYPES``, default ``click``), on an item the list
  showed, at most ``window_minutes`` after the list was served; a conversion the
  same with a conversion type (default ``purchase``). Each (list, item) counts once
  per kind, so a double click is one click.
* ``ctr`` = clicks / items served; ``list_ctr`` = lists with a click / lists;
  ``conversion_rate`` = conversions / items served.
* ``mrr``: per list, 1 / the position (1-based) of its best-placed clicked item,
  0 without a click; averaged over lists.
* latency: percentiles of the server-side time to produce each list (stored with
  its impression), in milliseconds.

Loading reads the experiment's impressions (index on ``experiment``) and the
events attributed to them (index on ``impression_id``): work proportional to the
experiment's size, on an admin call, never on the request path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import clock_skew
from app.db_models import Impression, Interaction
from app.experiments import stats
from app.experiments.definitions import ExperimentDef
from app.repository import as_utc

#: How much earlier than its list an event may be stamped and still count (the same
#: tolerance as attribution's window rule; ``app.core.clock_skew``). An event from before
#: that answers no list (a click stamped in 2020 on a list served today was counted).
CLOCK_TOLERANCE = clock_skew.CLOCK_TOLERANCE


@dataclass
class UserTotals:
    """One user's sums in one variant (the statistics' unit)."""

    impressions: int = 0
    served: int = 0
    clicks: int = 0
    conversions: int = 0
    lists_clicked: int = 0
    reciprocal_ranks: float = 0.0


#: A randomisation unit: ("user", user id) or ("session", session id).
Unit = tuple[str, str]


@dataclass
class VariantTotals:
    users: dict[Unit, UserTotals] = field(default_factory=dict)  # per unit (user or session)
    latencies_ms: list[float] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)

    def user(self, unit: Unit) -> UserTotals:
        totals = self.users.get(unit)
        if totals is None:
            totals = self.users[unit] = UserTotals()
        return totals


def _utc(value: datetime) -> datetime:
    return as_utc(value)  # the session's zone (Postgres) or naive UTC (SQLite) -> UTC


@dataclass(frozen=True)
class CountedList:
    """One served list of the experiment, counted by the rules above."""

    variant: str
    user_id: str  # "" for an ad-hoc list without one
    created_at: datetime
    served: int
    clicks: int
    conversions: int
    reciprocal_rank: float  # 1 / position of the best-placed clicked item; 0 without a click
    latency_ms: float | None
    version: str
    session_id: str | None = None  # an ad-hoc request's session

    @property
    def unit(self) -> Unit:
        """Whom the list counts for: its user, else its session (as assignment chose)."""
        if self.user_id or self.session_id is None:
            return ("user", self.user_id)
        return ("session", self.session_id)


def counted_lists(
    session: Session,
    experiment: ExperimentDef,
    click_types: Collection[str],
    conversion_types: Collection[str],
) -> Iterator[CountedList]:
    """Every list the experiment served to one of its variants, with its clicks and conversions.

    The one place the counting rules live: totals (``load_totals``) and the
    time series (``app.experiments.series``) both fold these.
    """
    names = {v.name for v in experiment.variants}
    window = timedelta(minutes=experiment.window_minutes)
    ids = select(Impression.id).where(Impression.experiment == experiment.name)
    events: dict[str, list[tuple[str, str, datetime]]] = {}
    wanted = [*click_types, *conversion_types]
    query = select(
        Interaction.impression_id, Interaction.item_id, Interaction.type, Interaction.ts
    ).where(Interaction.impression_id.in_(ids), Interaction.type.in_(wanted))
    for impression_id, item_id, kind, ts in session.execute(query):
        if impression_id is not None and kind is not None:
            events.setdefault(impression_id, []).append((item_id, kind, _utc(ts)))
    rows = session.execute(
        select(
            Impression.id,
            Impression.user_id,
            Impression.variant,
            Impression.items,
            Impression.version,
            Impression.latency_ms,
            Impression.created_at,
            Impression.session_id,
        ).where(Impression.experiment == experiment.name)
    )
    for rec_id, user_id, variant, items, version, latency_ms, created_at, session_id in rows:
        if (
            variant is None or variant not in names
        ):  # a variant name the definition no longer has: not counted
            continue
        positions = {item: n for n, item in reversed(list(enumerate(items, start=1)))}
        clicked: set[str] = set()
        converted: set[str] = set()
        served_at = _utc(created_at)
        earliest, deadline = served_at - CLOCK_TOLERANCE, served_at + window
        for item_id, kind, ts in events.get(rec_id, ()):
            if item_id not in positions or not earliest <= ts <= deadline:
                continue
            if kind in click_types:
                clicked.add(item_id)
            if kind in conversion_types:
                converted.add(item_id)
        yield CountedList(
            variant=variant,
            user_id=user_id or "",
            created_at=served_at,
            served=len(items),
            clicks=len(clicked),
            conversions=len(converted),
            reciprocal_rank=1.0 / min(positions[i] for i in clicked) if clicked else 0.0,
            latency_ms=float(latency_ms) if latency_ms is not None else None,
            version=version,
            session_id=session_id,
        )


def add_list(totals: VariantTotals, counted: CountedList) -> None:
    """Fold one counted list into its variant's per-unit sums."""
    user = totals.user(counted.unit)
    user.impressions += 1
    user.served += counted.served
    user.clicks += counted.clicks
    user.conversions += counted.conversions
    if counted.clicks:
        user.lists_clicked += 1
        user.reciprocal_ranks += counted.reciprocal_rank
    if counted.latency_ms is not None:
        totals.latencies_ms.append(counted.latency_ms)
    totals.versions[counted.version] += 1


def load_totals(
    session: Session,
    experiment: ExperimentDef,
    click_types: Collection[str],
    conversion_types: Collection[str],
) -> dict[str, VariantTotals]:
    """Per variant name, the per-user sums of the experiment's impressions and events."""
    totals = {v.name: VariantTotals() for v in experiment.variants}
    for counted in counted_lists(session, experiment, click_types, conversion_types):
        add_list(totals[counted.variant], counted)
    return totals


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def variant_summary(totals: VariantTotals) -> dict[str, Any]:
    """Counts and rates of one variant."""
    users = totals.users.values()
    impressions = sum(u.impressions for u in users)
    served = sum(u.served for u in users)
    clicks = sum(u.clicks for u in users)
    conversions = sum(u.conversions for u in users)
    lists_clicked = sum(u.lists_clicked for u in users)
    reciprocal = sum(u.reciprocal_ranks for u in users)
    return {
        "users": len(totals.users),
        "impressions": impressions,
        "items_served": served,
        "clicks": clicks,
        "conversions": conversions,
        "ctr": clicks / served if served else 0.0,
        "list_ctr": lists_clicked / impressions if impressions else 0.0,
        "conversion_rate": conversions / served if served else 0.0,
        "mrr": reciprocal / impressions if impressions else 0.0,
        "latency_ms": {
            "p50": _percentile(totals.latencies_ms, 50),
            "p99": _percentile(totals.latencies_ms, 99),
        },
        "served_versions": dict(totals.versions),
    }


def ctr_estimate(totals: VariantTotals) -> stats.RatioEstimate:
    """The variant's CTR as a ratio of per-user sums, with its variance."""
    users = list(totals.users.values())
    return stats.ratio_estimate([u.clicks for u in users], [u.served for u in users])


def conversion_estimate(totals: VariantTotals) -> stats.RatioEstimate:
    """The variant's conversion rate (conversions / items served) as a ratio of per-user
    sums, with its variance: the same unit and estimator as the CTR's."""
    users = list(totals.users.values())
    return stats.ratio_estimate([u.conversions for u in users], [u.served for u in users])


def comparisons(experiment: ExperimentDef) -> int:
    """How many variants are compared with control: those that get traffic (a variant of
    weight 0 never has a user, so it can never be declared different)."""
    return max(
        1, sum(1 for v in experiment.variants if v.name != experiment.control and v.weight > 0)
    )


def _compared(
    result: stats.SequentialComparison, diff_key: str, comparisons: int, method: str
) -> dict[str, Any]:
    return {
        diff_key: result.diff,
        "ci95": list(result.ci95) if result.ci95 is not None else None,
        "p_value": result.p_value,
        "p_value_adjusted": result.p_value_adjusted,
        "comparisons": comparisons,
        "significant": result.significant,
        "method": method,
    }


def compare_with_control(
    control: VariantTotals,
    variant: VariantTotals,
    mixing_sd: float,
    alpha: float = 0.05,
    min_users: int = stats.MIN_USERS,
    comparisons: int = 1,
) -> dict[str, Any]:
    """``vs_control`` of one variant: CTR difference, always-valid interval and p-value,
    the significance and interval adjusted for the experiment's ``comparisons``; and the
    same for the conversion rate under ``conversion``. Each rate is its own family: the
    Bonferroni adjustment is over the variants, for each rate. A difference and its
    interval are None while either side has served nothing."""
    ctr = stats.compare(
        ctr_estimate(control), ctr_estimate(variant), mixing_sd, alpha, min_users, comparisons
    )
    conversion = stats.compare(
        conversion_estimate(control),
        conversion_estimate(variant),
        mixing_sd,
        alpha,
        min_users,
        comparisons,
    )
    return {
        **_compared(ctr, "ctr_diff", comparisons, stats.MSPRT_METHOD),
        "conversion": _compared(
            conversion, "conversion_rate_diff", comparisons, stats.CONVERSION_METHOD
        ),
    }


def summarize(
    experiment: ExperimentDef,
    totals: Mapping[str, VariantTotals],
    alpha: float = 0.05,
    min_users: int = stats.MIN_USERS,
) -> dict[str, Any]:
    """The results document (``GET /admin/experiments/{name}``) without the definition."""
    control = totals[experiment.control]
    variants = []
    for v in experiment.variants:
        entry = variant_summary(totals[v.name])
        if v.name != experiment.control:
            entry["vs_control"] = compare_with_control(
                control,
                totals[v.name],
                experiment.mixing_sd,
                alpha,
                min_users,
                comparisons(experiment),
            )
        variants.append((v, entry))
    srm = stats.sample_ratio_check(
        [len(totals[v.name].users) for v in experiment.variants],
        [v.weight for v in experiment.variants],
    )
    return {
        "variants": variants,
        "srm": {"p_value": srm.p_value, "ok": srm.ok},
    }
