"""Which models a tuning run searches: the operator's list, checked against task and data.

``screen`` runs each candidate's ``Model.check_data`` on the data the trials will
fit on and leaves out, with the reason, a model that cannot train on it whatever
its settings (CF-NADE on ratings that are all equal): before this, such a model
failed trial after trial, each at once, for the whole budget. It also leaves out
from a top-k search a model that trains but can learn nothing to rank by
(``Model.fits_rating_values`` with every rating the same: biased-mf on a log without
ratings, where each event reads 1.0, fitted a constant and ranked by noise for its
share of the budget).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from training.data.interactions import Interactions
from training.models import REGISTRY, model_class, trains_on_ratings
from training.models.base import Model, UnsuitableData
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


def training_rows(name: str, train: Interactions) -> Interactions:
    """What candidate ``name`` fits on: a rating model the records that carry a rating
    (``Interactions.rated_part``), as ``genrec train`` reads the log for it, since a mixed
    log's click read as a rating of 1.0 is the bottom of the scale; any other model every
    record. Same id maps, so a rating model in a top-k search is judged on the same
    validation as every other candidate."""
    return train.rated_part() if trains_on_ratings(name) else train


def winner_data(name: str, data: Interactions) -> Interactions:
    """The data the winner ``name`` is refitted on and saved with: ``training_rows``, over
    the users and items those rows have (what ``genrec train``'s read for it gives)."""
    rows = training_rows(name, data)
    return data if rows is data else rows.compact()


def screen(
    models: Sequence[str], train: Interactions, task: str
) -> tuple[list[str], dict[str, str]]:
    """``models`` split into those that can train on ``train`` (in order) and those that
    cannot, each with ``check_data``'s reason (its default settings: the check reads
    none that the search samples). In a top-k search a model that fits rating values
    (``Model.fits_rating_values``) is left out too when every rating is the same: it
    would rank by noise (a ratings search of equal ratings is left as it is: there every
    rating model predicts them exactly)."""
    usable: list[str] = []
    left_out: dict[str, str] = {}
    for name in models:
        cls = model_class(name)
        rows = training_rows(name, train)
        try:
            cls(cls.Config()).check_data(rows)
        except UnsuitableData as exc:
            left_out[name] = str(exc)
            continue
        flat = one_rating(rows) if task == "topk" and cls.fits_rating_values else None
        if flat is not None:
            left_out[name] = (
                f"predicts ratings, and every training rating is {flat:g}"
                + ("" if rows.explicit else " (no event in the data carries a rating)")
                + ": nothing to fit"
            )
        else:
            usable.append(name)
    return usable, left_out


def one_rating(rows: Interactions) -> float | None:
    """The one rating value every record of ``rows`` has; None when they differ (or none)."""
    if len(rows) == 0:
        return None
    low, high = rows.rating_range
    return low if low == high else None


def out_line(out: dict[str, str]) -> str:
    """``model: why; model: why`` (an error message's list)."""
    return "; ".join(f"{model}: {why}" for model, why in out.items())
