"""How the pages print values: the Jinja filters ``show``, ``utc`` and ``urlpart``.

Pages render values they do not know the shape of (a job's progress, a
manifest's hyper-parameters, a gate's record, an item's attributes). Printed
with ``{{ value }}`` they came out as Python's reprs: ``True``, ``None``,
``{'loss': 701.7695007324219}``, ``['Comedy', 'Drama']``, and a count stored
as a float as ``9988.0000``. ``show`` prints them for people:

- integers (and floats that hold one, such as a count) as integers;
- other numbers with 4 significant digits (the exact value in the tooltip);
- booleans as yes/no, None as "–";
- a dict as a nested key/value list (``<dl class="kv">``), a list comma-joined;
- a moment (a ``datetime``, or text that is an ISO-8601 date and time) as ``utc`` does.

``utc`` prints a moment (a ``datetime`` or an ISO-8601 string) as
``2026-12-06T22:08:34Z``: in UTC whatever zone it came in, with the zone
written, in the form the API's JSON uses ("Z").

``urlpart`` escapes text for one URL path segment or query value: every
reserved character, "/" included (Jinja's ``urlencode`` keeps "/", so an item
``a/../b`` linked to ``/items/a/../b``, which the browser turns into ``/items/b``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape

DASH = "–"
#: Significant digits of a number that is not an integer.
DIGITS = 4
#: Text that is a date and time (a job's times, a tuning cutoff): printed by ``utc``.
_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def number(value: float) -> str:
    """An int as an int; a float with ``DIGITS`` significant digits (an integral one as an int)."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if 1e4 <= abs(value) < 1e15:  # .4g would switch to 1.235e+04 here
        return f"{value:.0f}"
    return f"{value:.{DIGITS}g}"


def show(value: Any) -> Markup:
    """``value`` as the pages print it (see the module docstring); HTML-escaped."""
    if value is None:
        return Markup(DASH)
    if isinstance(value, bool):
        return Markup("yes" if value else "no")
    if isinstance(value, int | float):
        text = number(value)
        if isinstance(value, float) and math.isfinite(value) and float(text) != value:
            # Rounded for the eye; the exact value stays one hover away.
            return Markup('<span title="{}">{}</span>').format(repr(value), text)
        return Markup(escape(text))
    if isinstance(value, Mapping):
        if not value:
            return Markup(DASH)
        rows = Markup("").join(
            Markup("<dt>{}</dt><dd>{}</dd>").format(key, show(item)) for key, item in value.items()
        )
        return Markup('<dl class="kv">{}</dl>').format(rows)
    if isinstance(value, list | tuple | set | frozenset):
        if not value:
            return Markup(DASH)
        return Markup(", ").join(show(item) for item in value)
    if isinstance(value, datetime) or (isinstance(value, str) and _MOMENT.match(value)):
        return Markup(escape(utc(value)))
    return Markup(escape(str(value)))


def utc(value: Any) -> str:
    """A moment as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC; "–" for None; other text unchanged.

    A naive ``datetime`` is taken to be UTC (how SQLite returns one, as the repository does).
    """
    if value is None:
        return DASH
    moment: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    if moment is None:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def urlpart(value: Any) -> str:
    """``value`` escaped for one URL path segment or query value (nothing left reserved)."""
    return quote(str(value), safe="")


#: Ids a browser rewrites as a dot segment however they are escaped (the URL standard
#: reads "%2e%2e" as ".." too), and the empty id: their pages are linked by query.
_NOT_A_SEGMENT = frozenset({"", ".", ".."})


def item_href(item_id: str) -> str:
    """The dashboard's page of ``item_id``: ``/dashboard/catalog/items/<id>``, every reserved
    character escaped; ``/dashboard/catalog/item?id=<id>`` for "." and ".." (see above)."""
    if item_id in _NOT_A_SEGMENT:
        return f"/dashboard/catalog/item?id={urlpart(item_id)}"
    return f"/dashboard/catalog/items/{urlpart(item_id)}"
