"""Which models a tuning run searches: the operator's list, checked against task and data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from training.data.interactions import Interactions
from training.models import REGISTRY
from training.models.base import Model
from training.tuning.errors import TuningError

TuneTask = Literal["topk", "ratings"]
TASKS: tuple[str, ...] = ("topk", "ratings")

#: Models left out of the default list, and why (they are searched when named).
NOT_BY_DEFAULT: dict[str, str] = {
    # ConvMF needs item documents (text or the IMDB plot file); without them it fails.
    "convmf": "needs item texts",
}


def can_do(cls: type[Model], task: str) -> bool:
    """Rating models also rank (by predicted rating); top-k models cannot predict ratings."""
    return task == "topk" or cls.task == "ratings"


def check_names(task: str, names: Sequence[str] | None) -> None:
    """Refuse an unknown task, unknown models or models the task cannot use (no data needed)."""
    if task not in TASKS:
        raise TuningError(f"unknown task '{task}'; choose one of: {', '.join(TASKS)}")
    if not names:
        return
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise TuningError(
            f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(REGISTRY))}"
        )
    wrong = [n for n in names if not can_do(REGISTRY[n], task)]
    if wrong:
        raise TuningError(
            f"model(s) {', '.join(wrong)} only rank items and cannot predict ratings "
            f"(--task {task}); rating models: "
            f"{', '.join(n for n, c in REGISTRY.items() if c.task == 'ratings')}"
        )
    if len(set(names)) != len(names):
        raise TuningError(f"--models names a model twice: {', '.join(names)}")


def choose_models(task: str, names: Sequence[str] | None, data: Interactions) -> list[str]:
    """The models to search, in the given order (default: every model of the task)."""
    check_names(task, names)
    if task == "ratings" and not data.explicit:
        raise TuningError("--task ratings needs explicit ratings, but the data is implicit")
    if names:
        return list(names)
    chosen = [
        name for name, cls in REGISTRY.items() if cls.task == task and name not in NOT_BY_DEFAULT
    ]
    # Closed-form models (nothing to stop early) first: their trials take a second or two.
    return sorted(chosen, key=lambda name: "patience" in REGISTRY[name].Config().to_dict())
