"""The overall form of a function that also returns per-segment figures.

``evaluate_topk_by_activity``, ``evaluate_ratings_by_activity`` and
``validated_fit_by_activity`` each have a twin for the caller that wants no segment
figures. Written out, the twin repeated every parameter (name, type, default) only to
drop part of the result, and the two lists could drift apart. ``overall_form`` makes
the twin from the by-activity function itself: one parameter list, declared once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def overall_form(
    by_activity: Callable[P, R], pick: Callable[[R], T], name: str, doc: str
) -> Callable[P, T]:
    """``by_activity`` answering ``pick`` of its result (the part without the segment
    figures), as ``name`` with ``doc``: the very parameters of ``by_activity``, so a
    caller and a type checker see them as declared there."""

    @functools.wraps(by_activity)
    def overall(*args: P.args, **kwargs: P.kwargs) -> T:
        return pick(by_activity(*args, **kwargs))

    overall.__name__ = overall.__qualname__ = name
    overall.__doc__ = doc
    return overall
