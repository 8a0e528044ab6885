"""Users grouped by activity: how many training interactions each one has.

A mean over all users hides the question an operator asks most: which model
is best for *new* users (a handful of interactions) and which for heavy ones?
A model can win on average and lose badly on the cold users, where
popularity or EASE often wins. Every evaluation that has per-user figures
(``training.evaluate``) can also report them per segment with
``by_activity``, a bincount over arrays it already holds.

The edges are fixed, the same for every model, version and data set, so a
segment's figure is comparable across versions and across a tuning
leaderboard. Why these: ``0`` is a user the model never saw (folded in from
nothing, or a rating predicted by serving's baseline); ``1-4`` a new user
(fewer than the 5 interactions most published data sets require of every
user, so the segment papers never measure); ``5-19`` a light user (MovieLens
keeps only users with 20 or more ratings); ``20-99`` a regular and ``100+`` a
heavy one. Each edge is about 4-5 times the one before: activity is
long-tailed, and a log scale keeps every segment populated on real logs.

A segment's mean over few users is noisy: every segment carries its user
count, and anything that shows a figure shows the count beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

#: Lower edge of every segment (training interactions of a user); the last is open-ended.
EDGES: tuple[int, ...] = (0, 1, 5, 20, 100)


class SegmentError(ValueError):
    """Segment inputs do not fit together; the message says how."""


def labels(edges: Sequence[int] = EDGES) -> list[str]:
    """``["0", "1-4", "5-19", "20-99", "100+"]`` for the default edges."""
    _check_edges(edges)
    out = []
    for low, high in zip(edges, [*edges[1:], None], strict=True):
        if high is None:
            out.append(f"{low}+")
        elif high - 1 == low:
            out.append(str(low))
        else:
            out.append(f"{low}-{high - 1}")
    return out


def _check_edges(edges: Sequence[int]) -> None:
    if not edges or edges[0] != 0 or any(b <= a for a, b in pairwise(edges)):
        raise SegmentError(f"segment edges must start at 0 and increase, got {list(edges)}")


def assign(activity: np.ndarray, edges: Sequence[int] = EDGES) -> np.ndarray:
    """(n,) segment index of each user from their (n,) training-interaction counts."""
    _check_edges(edges)
    counts = np.asarray(activity)
    if counts.size and counts.min() < 0:
        raise SegmentError("interaction counts cannot be negative")
    return np.searchsorted(np.asarray(edges), counts, side="right") - 1


@dataclass(frozen=True)
class Segment:
    """One segment's figures: ``metrics`` is empty when it holds no user."""

    label: str
    users: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ByActivity:
    """Every segment of ``edges``, in order, empty ones included (comparable across runs)."""

    edges: tuple[int, ...]
    segments: tuple[Segment, ...]

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``training["by_activity"]`` (JSON: a non-finite figure is null)."""
        return {
            "edges": list(self.edges),
            "segments": [
                {
                    "label": s.label,
                    "users": s.users,
                    "metrics": {k: (v if np.isfinite(v) else None) for k, v in s.metrics.items()},
                }
                for s in self.segments
            ],
        }

    def metric_names(self) -> list[str]:
        """Every metric some segment has, in first-seen order."""
        names: dict[str, None] = {}
        for s in self.segments:
            names.update(dict.fromkeys(s.metrics))
        return list(names)

    def to_markdown(self) -> str:
        """A table, one row per segment, its user count beside its figures (a mean over
        few users is noisy); an empty segment's figures are ``–``."""
        names = self.metric_names()
        lines = [
            "| interactions per user | users | " + " | ".join(names) + " |",
            "|---|---:|" + "---:|" * len(names),
        ]
        for s in self.segments:
            cells = [_cell(name, s.metrics.get(name)) for name in names]
            lines.append(f"| {s.label} | {s.users:,} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


#: Figures that count things (``evaluate_ratings``'s pairs), printed as whole numbers.
COUNTS = frozenset({"n", "n_default"})


def _cell(name: str, value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:,.0f}" if name in COUNTS else f"{value:.4f}"


def by_activity(
    activity: np.ndarray, per_user: Mapping[str, np.ndarray], edges: Sequence[int] = EDGES
) -> ByActivity:
    """Each segment's mean of every per-user metric (one value per user, aligned with
    ``activity``). A NaN value (a metric undefined for that user) is left out of its
    segment's mean, as ``np.nanmean`` would: a segment whose users all lack a metric has
    NaN for it (null in the manifest), not a 0.0 that would read as measured."""
    seg = assign(activity, edges)
    n = len(edges)
    users = np.bincount(seg, minlength=n)
    means: dict[str, np.ndarray] = {}
    for name, values in per_user.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != seg.shape:
            raise SegmentError(f"{name}: {values.size} values for {seg.size} users")
        finite = ~np.isnan(values)
        sums = np.bincount(seg[finite], weights=values[finite], minlength=n)
        counted = np.bincount(seg[finite], minlength=n)
        means[name] = np.where(counted > 0, sums / np.maximum(counted, 1), np.nan)
    return ByActivity(
        tuple(edges),
        tuple(
            Segment(
                label,
                int(users[i]),
                {name: float(m[i]) for name, m in means.items()} if users[i] else {},
            )
            for i, label in enumerate(labels(edges))
        ),
    )


def ratings_by_activity(
    activity: np.ndarray,
    users: np.ndarray,
    predicted: np.ndarray,
    actual: np.ndarray,
    defaulted: np.ndarray,
    edges: Sequence[int] = EDGES,
) -> ByActivity:
    """RMSE and MAE of each segment from the rating pairs of its users.

    ``activity`` (U,) is every user's training-rating count; ``users``,
    ``predicted``, ``actual`` and ``defaulted`` (P,) describe the pairs (a
    defaulted pair got serving's baseline, ``training.evaluate``). Figures
    as ``evaluate_ratings`` names them: ``rmse``, ``mae``, ``n`` (pairs),
    ``n_default``.
    """
    pair_seg = assign(np.asarray(activity)[users], edges)
    n = len(edges)
    err = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    pairs = np.bincount(pair_seg, minlength=n)
    squares = np.bincount(pair_seg, weights=err * err, minlength=n)
    absolute = np.bincount(pair_seg, weights=np.abs(err), minlength=n)
    default = np.bincount(pair_seg, weights=np.asarray(defaulted, dtype=np.float64), minlength=n)
    distinct = np.unique(users)
    user_count = np.bincount(assign(np.asarray(activity)[distinct], edges), minlength=n)
    return ByActivity(
        tuple(edges),
        tuple(
            Segment(
                label,
                int(user_count[i]),
                {
                    "rmse": float(np.sqrt(squares[i] / pairs[i])),
                    "mae": float(absolute[i] / pairs[i]),
                    "n": float(pairs[i]),
                    "n_default": float(default[i]),
                }
                if pairs[i]
                else {},
            )
            for i, label in enumerate(labels(edges))
        ),
    )


def from_record(record: Any) -> ByActivity | None:
    """A manifest's ``training["by_activity"]`` read back; None when absent (a version
    written before it was recorded) or malformed (shown as absent, never an error)."""
    if not isinstance(record, dict):
        return None
    edges, segments = record.get("edges"), record.get("segments")
    if not isinstance(edges, list) or not isinstance(segments, list):
        return None
    out = []
    try:
        for s in segments:
            metrics = {
                str(k): float("nan") if v is None else float(v) for k, v in s["metrics"].items()
            }
            out.append(Segment(str(s["label"]), int(s["users"]), metrics))
        return ByActivity(tuple(int(e) for e in edges), tuple(out))
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
        # OverflowError: ``int`` of an infinite count (JSON's ``Infinity``, or ``1e999``).
        return None
