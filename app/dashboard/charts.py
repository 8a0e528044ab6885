"""Chart data for the pages: plain JSON that ``static/dashboard.js`` hands to uPlot.

A chart is ``{"title", "x_label", "y_label", "x": [...], "series": {name: [...]}}``, and
optionally ``"x_integer": true`` (ticks only at whole numbers: epochs) and ``"bounds":
{name: line}`` (series that bound an interval around ``line``: drawn thin, dashed, in
the line's colour). The script labels both axes with ``x_label`` / ``y_label`` (which
carry the unit) and always lets the y range reach 0, so a flat series is drawn flat
rather than stretched over the whole height; ``null`` is a gap.

The template embeds each chart in a ``<script type="application/json">`` element
(Jinja's ``tojson`` escapes it for that place) and the script draws every such
element it finds.

What goes on one chart: only series of the same quantity and scale. A rating model's
validation holds ``rmse``, ``mae`` (rating points) and the counts ``n``, ``n_default``
(~10,000: drawn with them they flattened the errors at 0); Mult-VAE's losses hold
``loss`` (~700) beside ``kl`` and ``beta`` (~0.01). Counts are never plotted (the
per-epoch table lists them); the rest are grouped by unit where it is known and by
order of magnitude where it is not.
"""

from __future__ import annotations

import math
import re
from typing import Any

from app.experiments.series import DiffSeries, ExperimentSeries

#: Validation figures that count rows (how big the validation set was), not how good a fit.
COUNTS = frozenset({"n", "n_default"})
#: Validation errors in the unit of the ratings.
RATING_ERRORS = frozenset({"rmse", "mae"})
#: Ranking metrics at a cut-off (``ndcg@100``, ``recall@20``): all between 0 and 1.
RANKING = re.compile(r"[a-z_]+@\d+")
#: A series joins a chart when its largest value is within this factor of the chart's.
SCALE_FACTOR = 10.0


def curve_chart(curve: Any) -> list[dict[str, Any]]:
    """The per-epoch losses and validation metrics of a manifest's ``training["curve"]``:
    one chart per quantity, or per group of quantities on the same unit and scale.

    Empty when the version has no curve (closed-form models, or a version trained
    before curves were recorded).
    """
    rows = [row for row in curve if isinstance(row, dict)] if isinstance(curve, list) else []
    if not rows:
        return []
    epochs = [int(row.get("epoch", n + 1)) for n, row in enumerate(rows)]
    charts = []
    for key, section in (("losses", "training"), ("metrics", "validation")):
        names = sorted({name for row in rows for name in (row.get(key) or {})} - COUNTS)
        series = {name: [_number((row.get(key) or {}).get(name)) for row in rows] for name in names}
        for group, quantity in _groups(series):
            charts.append(
                {
                    "title": f"{section}: {', '.join(group)}",
                    "x_label": "epoch",
                    "y_label": quantity or _short(", ".join(group)),
                    "x": epochs,
                    "x_integer": True,
                    "series": {name: series[name] for name in group},
                }
            )
    return charts


def curve_table(curve: Any) -> dict[str, Any] | None:
    """Every per-epoch figure of the curve (counts included) as a table: ``columns``
    (``(section, name)``), and ``rows`` of ``(epoch, [value per column], seconds)``."""
    rows = [row for row in curve if isinstance(row, dict)] if isinstance(curve, list) else []
    if not rows:
        return None
    columns = [
        (key, name)
        for key in ("losses", "metrics")
        for name in sorted({name for row in rows for name in (row.get(key) or {})})
    ]
    return {
        "columns": columns,
        "rows": [
            (
                row.get("epoch", n + 1),
                [(row.get(key) or {}).get(name) for key, name in columns],
                row.get("seconds"),
            )
            for n, row in enumerate(rows)
        ],
    }


def kept_epoch_gap(training: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The selection metric at the kept epoch, by the curve, when the saved model measures
    otherwise: ``{"metric", "epoch", "curve", "saved"}``, else None.

    The offline metrics are the saved scorer's, measured on the held-out slice after the
    fit (``training.pipeline.train_model``); a model that changes after its last
    validated epoch (i-cf-nade re-fits every user's rows, ``changes_after_validation``)
    then shows a figure the curve does not reach at that epoch, which reads like a
    mistake unless the page says why.
    """
    name, epoch = training.get("selection_metric"), training.get("best_epoch")
    curve = training.get("curve")
    if not isinstance(name, str) or not isinstance(curve, list):
        return None
    saved = _number(metrics.get(name))
    row = next(
        (r for r in curve if isinstance(r, dict) and r.get("epoch") == epoch and epoch), None
    )
    at_epoch = _number((row.get("metrics") or {}).get(name)) if row is not None else None
    if saved is None or at_epoch is None or math.isclose(saved, at_epoch, rel_tol=1e-6):
        return None
    return {"metric": name, "epoch": epoch, "curve": at_epoch, "saved": saved}


def _short(label: str, limit: int = 28) -> str:
    """An axis label that fits beside a 260 px chart (the legend names every series)."""
    return label if len(label) <= limit else "value"


def _groups(series: dict[str, list[float | None]]) -> list[tuple[list[str], str | None]]:
    """Names to draw together, with the axis label of their quantity and unit where it is
    known: the rating errors, the ranking metrics; otherwise names within ``SCALE_FACTOR``
    of each other's size."""
    groups: list[tuple[list[str], str | None]] = []
    for known, quantity in ((RATING_ERRORS, "error (rating points)"), (None, "score (0 to 1)")):
        members = [
            name
            for name in series
            if (name in known if known is not None else RANKING.fullmatch(name) is not None)
        ]
        if members:
            groups.append((members, quantity))
    placed = {name for members, _ in groups for name in members}
    by_size = sorted(
        (name for name in series if name not in placed), key=lambda n: -_largest(series[n])
    )
    for name in by_size:
        size = _largest(series[name])
        last = groups[-1] if groups and groups[-1][1] is None else None
        if last is not None and size * SCALE_FACTOR >= _largest(series[last[0][0]]):
            last[0].append(name)
        else:
            groups.append(([name], None))
    return groups


def _largest(values: list[float | None]) -> float:
    return max((abs(v) for v in values if v is not None), default=0.0)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _percent(values: list[float | None]) -> list[float | None]:
    return [None if v is None else round(100.0 * v, 6) for v in values]


def experiment_charts(series: ExperimentSeries, control: str) -> list[dict[str, Any]]:
    """CTR and conversion rate per bucket of each variant, in percent as the results
    table prints them, and each variant's CTR difference and conversion-rate difference
    with control in percentage points ("pt", as the table), each with its always-valid
    95% interval at every bucket end.

    x is the bucket's end since the experiment's start, in minutes (hours once a
    bucket is an hour or more). A bucket that served a variant nothing, the
    difference before both sides were served anything, and an interval before
    there is evidence, are gaps (``null``), which uPlot leaves open.
    """
    hours = series.bucket_s >= 3600
    scale = 3600.0 if hours else 60.0
    x = [round((end - series.start).total_seconds() / scale, 3) for end in series.ends]
    x_label = f"{'hours' if hours else 'minutes'} since start"
    width = _width(series.bucket_s)
    charts: list[dict[str, Any]] = [
        {
            "title": f"CTR per {width}",
            "x_label": x_label,
            "y_label": "CTR (%)",
            "x": x,
            "series": {name: _percent(v.ctr) for name, v in series.variants.items()},
        },
        {
            "title": f"conversion rate per {width}",
            "x_label": x_label,
            "y_label": "conversion rate (%)",
            "x": x,
            "series": {name: _percent(v.conversion_rate) for name, v in series.variants.items()},
        },
    ]
    served = {name: _served_by(v.impressions) for name, v in series.variants.items()}
    differences = (("CTR", series.vs_control), ("conversion-rate", series.conversion_vs_control))
    for rate, comparisons in differences:
        chart = _difference_chart(rate, comparisons, served, control, x, x_label)
        if chart is not None:
            charts.append(chart)
    return charts


def _difference_chart(
    rate: str,
    comparisons: dict[str, DiffSeries],
    served: dict[str, list[bool]],
    control: str,
    x: list[float],
    x_label: str,
) -> dict[str, Any] | None:
    """One rate's difference with control per variant, in points, with its interval's
    bounds; None without a variant to compare."""
    diffs: dict[str, list[float | None]] = {}
    bounds: dict[str, str] = {}
    for name, diff in comparisons.items():
        both = [a and b for a, b in zip(served[name], served[control], strict=True)]
        line = f"{name} − {control}"
        diffs[line] = _percent([d if ok else None for d, ok in zip(diff.diff, both, strict=True)])
        diffs[f"{name} 95% low"] = _percent(diff.ci_low)
        diffs[f"{name} 95% high"] = _percent(diff.ci_high)
        bounds[f"{name} 95% low"] = bounds[f"{name} 95% high"] = line
    if not diffs:
        return None
    return {
        "title": f"{rate} difference with control, always-valid 95% interval (cumulative)",
        "x_label": x_label,
        "y_label": f"{rate} difference (pt)",
        "x": x,
        "series": diffs,
        "bounds": bounds,
    }


def _served_by(lists_per_bucket: list[int]) -> list[bool]:
    """Whether the variant had served any list by the end of each bucket."""
    total, out = 0, []
    for n in lists_per_bucket:
        total += n
        out.append(total > 0)
    return out


def _width(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
