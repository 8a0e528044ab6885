"""Chart data for the pages: plain JSON that ``static/dashboard.js`` hands to uPlot.

A chart is ``{"title", "x_label", "x": [...], "series": {name: [...]}}``;
the template embeds it in a ``<script type="application/json">`` element
(Jinja's ``tojson`` escapes it for that place) and the script draws every
such element it finds.
"""

from __future__ import annotations

from typing import Any


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
