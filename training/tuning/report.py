"""What a search found: one record per trial, the leaderboard, and the JSON-able report.

The report is what the winner's manifest carries (``training["tuning"]``) and
what ``genrec tune --json`` prints, so an operator can see how the served
settings were chosen: on which split, by which metric, against what.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from training.segments import from_record, labels

STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


@dataclass
class TrialRecord:
    """One trial as the progress line, the leaderboard and the plot see it."""

    number: int
    model: str
    settings: dict[str, Any]
    state: str  # complete | pruned | failed
    value: float | None  # the selection metric (None unless complete)
    fit_seconds: float | None
    elapsed: float | None  # seconds since the search began when the trial ended
    best_epoch: int | None = None
    note: str | None = None  # why it stopped early or failed
    lengths: dict[str, int] | None = None  # settings that replay the fit (the refit's)
    #: The counted figure's validation per user-activity segment (``ByActivity.to_dict``).
    by_activity: dict[str, Any] | None = None

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> TrialRecord:
        attrs = trial.user_attrs
        return cls(
            number=trial.number,
            model=str(trial.params.get("model", "?")),
            settings=dict(attrs.get("settings", {})),
            state=STATES.get(trial.state, trial.state.name.lower()),
            value=trial.value if trial.state == TrialState.COMPLETE else None,
            fit_seconds=attrs.get("fit_seconds"),
            elapsed=attrs.get("elapsed"),
            best_epoch=attrs.get("best_epoch"),
            note=attrs.get("stopped") or attrs.get("error"),
            lengths=attrs.get("lengths"),
            by_activity=attrs.get("by_activity"),
        )


@dataclass
class Entry:
    """A model's row of the leaderboard: its best complete trial and how many it ran."""

    model: str
    value: float | None
    settings: dict[str, Any] | None
    fit_seconds: float | None
    trial: int | None
    best_epoch: int | None
    trials: dict[str, int] = field(default_factory=dict)  # state -> count
    #: Mean over the confirmation folds (``confirm``); None: not a re-validated finalist.
    confirmed: float | None = None
    #: Epochs the refit on all the data runs (``training.tuning.refit``): the mean best
    #: epoch over the trial and its confirmation folds; None: no epoch was recorded.
    epochs: int | None = None
    #: The length settings of that refit (``Model.replay_lengths``, averaged the same way):
    #: ``{"epochs": n}`` for an epoch loop, a count per phase for IRGAN; None: a slice picks.
    lengths: dict[str, int] | None = None
    #: The best trial's validation per user-activity segment (``training.segments``), on
    #: the split every model is measured on; None: not recorded (an older search).
    by_activity: dict[str, Any] | None = None


def leaderboard(
    records: list[TrialRecord], models: list[str], higher_is_better: bool
) -> list[Entry]:
    """Best complete trial per model, best first; models with none at the bottom."""
    rows: list[Entry] = []
    for model in models:
        mine = [r for r in records if r.model == model]
        counts: dict[str, int] = {}
        for r in mine:
            counts[r.state] = counts.get(r.state, 0) + 1
        done = [(r.value, r) for r in mine if r.value is not None]
        if not done:
            rows.append(Entry(model, None, None, None, None, None, counts))
            continue
        sign = 1.0 if higher_is_better else -1.0
        _, best = max(done, key=lambda pair: sign * pair[0])
        rows.append(
            Entry(
                model,
                best.value,
                best.settings,
                best.fit_seconds,
                best.number,
                best.best_epoch,
                counts,
                epochs=best.best_epoch or None,
                lengths=best.lengths,
                by_activity=best.by_activity,
            )
        )
    sign = 1.0 if higher_is_better else -1.0
    rows.sort(key=lambda e: (e.value is None, -sign * (e.value or 0.0)))
    return rows


def tuning_report(
    *,
    task: str,
    metric: str,
    higher_is_better: bool,
    split: dict[str, Any],
    seed: int,
    budget_seconds: float,
    max_trials: int | None,
    seconds: float,
    study_name: str | None,
    board: list[Entry],
    records: list[TrialRecord],
    dropped: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON-able summary of a search (the manifest's ``training["tuning"]``).

    ``dropped``: candidates out of the search and why (left out before it
    because they cannot train on the data, or dropped by their trials).
    """
    counts: dict[str, int] = {}
    for r in records:
        counts[r.state] = counts.get(r.state, 0) + 1
    winner = board[0] if board and board[0].value is not None else None
    return {
        "task": task,
        "metric": metric,
        "higher_is_better": higher_is_better,
        "split": split,
        "seed": seed,
        "budget_seconds": budget_seconds,
        "max_trials": max_trials,
        "seconds": round(seconds, 3),
        "study": study_name,
        "trials": counts,
        "winner": None if winner is None else asdict(winner),
        "leaderboard": [asdict(e) for e in board],
        "dropped": dict(dropped or {}),
        "best_by_activity": best_by_activity(board, metric, higher_is_better),
    }


def best_by_activity(
    board: list[Entry], metric: str, higher_is_better: bool
) -> list[dict[str, Any]]:
    """Per user-activity segment, the model whose best trial scored best on ``metric`` for
    that segment's users: ``[{"label", "users", "model", "value"}, ...]``, in segment order,
    segments without users (or no recorded figure) left out.

    Every trial is measured on the same validation split, so the segments hold the same
    users for every model and the comparison is fair; it can name a model for new users
    (popularity, EASE) other than the overall winner. A segment of few users is noisy:
    ``users`` says how many.
    """
    sign = 1.0 if higher_is_better else -1.0
    best: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for entry in board:
        record = from_record(entry.by_activity)
        if record is None:
            continue
        for segment in record.segments:
            value = segment.metrics.get(metric)
            if not segment.users or value is None or not math.isfinite(value):
                continue
            if segment.label not in best:
                order.append(segment.label)
            held = best.get(segment.label)
            if held is None or sign * value > sign * held["value"]:
                best[segment.label] = {
                    "label": segment.label,
                    "users": segment.users,
                    "model": entry.model,
                    "value": value,
                }
    return [best[label] for label in labels() if label in best] + [
        best[label] for label in order if label not in labels()
    ]
