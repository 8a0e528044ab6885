"""Chart data for the pages: plain JSON that ``static/dashboard.js`` hands to uPlot.

A chart is ``{"title", "x_label", "x": [...], "series": {name: [...]}}``, and
optionally ``"bounds": {name: line}`` (series that bound an interval around
``line``: drawn thin, dashed, in the line's colour);
the template embeds it in a ``<script type="application/json">`` element
(Jinja's ``tojson`` escapes it for that place) and the script draws every
such element it finds.
"""

from __future__ import annotations

from typing import Any

from app.experiments.series import ExperimentSeries


def curve_chart(curve: Any) -> list[dict[str, Any]]:
    """The per-epoch losses and validation metrics of a manifest's ``training["curve"]``.

    Two charts (losses, validation metrics): their scales differ by orders of
    magnitude. Empty when the version has no curve (closed-form models, or a
    version trained before curves were recorded).
    """
    if not isinstance(curve, list) or not curve:
        return []
    epochs = [int(row.get("epoch", n + 1)) for n, row in enumerate(curve) if isinstance(row, dict)]
    rows = [row for row in curve if isinstance(row, dict)]
    charts = []
    for key, title in (("losses", "training loss"), ("metrics", "validation")):
        names = sorted({name for row in rows for name in (row.get(key) or {})})
        if not names:
            continue
        series = {name: [_number((row.get(key) or {}).get(name)) for row in rows] for name in names}
        charts.append({"title": title, "x_label": "epoch", "x": epochs, "series": series})
    return charts


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def experiment_charts(series: ExperimentSeries, control: str) -> list[dict[str, Any]]:
    """CTR and conversion rate per bucket of each variant, and each variant's CTR difference
    with control with its always-valid 95% interval at every bucket end.

    x is the bucket's end since the experiment's start, in minutes (hours once a
    bucket is an hour or more). A bucket that served a variant nothing, and an
    interval before there is evidence, are gaps (``null``), which uPlot leaves open.
    """
    hours = series.bucket_s >= 3600
    scale = 3600.0 if hours else 60.0
    x = [round((end - series.start).total_seconds() / scale, 3) for end in series.ends]
    x_label = f"{'hours' if hours else 'minutes'} since start"
    charts: list[dict[str, Any]] = [
        {
            "title": f"CTR per {_width(series.bucket_s)}",
            "x_label": x_label,
            "x": x,
            "series": {name: v.ctr for name, v in series.variants.items()},
        },
        {
            "title": f"conversion rate per {_width(series.bucket_s)}",
            "x_label": x_label,
            "x": x,
            "series": {name: v.conversion_rate for name, v in series.variants.items()},
        },
    ]
    diffs: dict[str, list[float | None]] = {}
    bounds: dict[str, str] = {}
    for name, diff in series.vs_control.items():
        line = f"{name} − {control}"
        diffs[line] = list(diff.ctr_diff)
        diffs[f"{name} 95% low"] = diff.ci_low
        diffs[f"{name} 95% high"] = diff.ci_high
        bounds[f"{name} 95% low"] = bounds[f"{name} 95% high"] = line
    if diffs:
        charts.append(
            {
                "title": "CTR difference with control, always-valid 95% interval (cumulative)",
                "x_label": x_label,
                "x": x,
                "series": diffs,
                "bounds": bounds,
            }
        )
    return charts


def _width(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
