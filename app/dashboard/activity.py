"""A version's held-out figures per user-activity segment, as the version page's table.

The manifest's ``training["by_activity"]`` (``training.segments``) read back
through the same reader the training side writes against: a version written
before it was recorded, or a record that does not parse, has no table (the
page says nothing of it) rather than an error page.
"""

from __future__ import annotations

import math
from typing import Any

from training.segments import from_record


def activity_table(record: Any) -> dict[str, Any] | None:
    """``{"columns": [metric, ...], "rows": [(label, users, [value | None, ...]), ...]}``;
    None when there is nothing to show. A missing or non-finite figure is None (the
    page's ``show`` prints a dash)."""
    result = from_record(record)
    if result is None or not result.segments:
        return None
    columns = result.metric_names()
    rows = [
        (
            s.label,
            s.users,
            [
                value if value is not None and math.isfinite(value) else None
                for value in (s.metrics.get(name) for name in columns)
            ],
        )
        for s in result.segments
    ]
    return {"columns": columns, "rows": rows}


def best_per_segment(tuning: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The tuning report's ``best_by_activity`` rows that read as such (label, users,
    model, value); none for a report written before it was recorded."""
    rows = (tuning or {}).get("best_by_activity")
    if not isinstance(rows, list):
        return []
    keys = {"label": str, "users": int, "model": str, "value": float}
    return [
        row
        for row in rows
        if isinstance(row, dict)
        and all(
            isinstance(row.get(k), t) or (t is float and isinstance(row.get(k), int))
            for k, t in keys.items()
        )
    ]
