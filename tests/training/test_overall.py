"""``overall_form``: a by-activity function's twin without the segment figures."""

from __future__ import annotations

import inspect

from training.overall import overall_form


def _fit_by_activity(name: str, size: int = 3, *, scale: float = 1.0) -> tuple[str, int, float]:
    """The by-activity form: its last element stands for the segment figures."""
    return name, size, size * scale


def test_the_overall_form_takes_the_same_parameters_and_picks_from_the_result() -> None:
    fit = overall_form(_fit_by_activity, lambda out: out[:2], "fit", "The overall form.")
    assert fit("a") == ("a", 3)
    assert fit("b", 4, scale=2.0) == ("b", 4)  # positional, default and keyword alike
    assert inspect.signature(fit) == inspect.signature(_fit_by_activity)
    assert (fit.__name__, fit.__qualname__, fit.__doc__) == ("fit", "fit", "The overall form.")
