"""The cutoff rule between a trained version and the interaction log, in one place.

A version trained "up to ``cutoff``" saw a logged event only when both its
event time (``ts``) and its arrival time (``created_at``) are at or before
the cutoff; serving folds in every other event — a late event with an old
timestamp arrived after the training read, so the model never saw it. The
two conditions below are complements (both columns are NOT NULL), so every
logged event is either in the version or added to it at serving time,
exactly once. The training reader (``training.data.log_reader``) uses the
first, serving's queries (``app.repository``) the second;
``tests/app/test_cutoff_rule.py`` runs both on the same rows of a real
database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_


def in_training(ts: Any, created_at: Any, cutoff: Any) -> ColumnElement[bool]:
    """Rows a version trained up to ``cutoff`` was fitted on (columns or bound parameters)."""
    return and_(ts <= cutoff, created_at <= cutoff)


def after_training(ts: Any, created_at: Any, cutoff: Any) -> ColumnElement[bool]:
    """Rows serving adds to such a version's user state: the complement of ``in_training``."""
    return or_(ts > cutoff, created_at > cutoff)
