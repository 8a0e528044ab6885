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
