"""The winner refitted on all the data, for the number of epochs validation chose.

The search and the confirmation folds already measured, on held-out users
(or ratings), how many epochs the winner's settings want: each fit records
its best epoch. ``genrec train`` instead holds out a 10% per-user slice of
the data it saves, and lets that slice pick the epoch by its own measure
(NDCG@10 or RMSE). For a tuned winner that throws away twice: a tenth of
every user's records, and the search's evidence about the epoch. The usual
practice after a search (scikit-learn's ``refit=True``; the cross-validated
epoch count then a fit on everything) is one fit on all the data for the
validated epoch count; docs/tuning.md measures, on validation folds only,
that this is the better rule here before it was adopted.

Two fits come out of a refit:

* ``checked``: the settings fitted as ``genrec train`` fits them (the slice
  held out). Its figures on the slice are what the evaluation gate compares
  with production's on the same slice, and what the manifest reports, as
  for every retrained version.
* ``final``: the version that is saved, fitted on all the data. It runs the
  validated length settings (``Model.replay_lengths``: the mean best epoch as
  ``epochs`` for an epoch loop; IRGAN's pre-training epochs and game epochs,
  each averaged, since its game starts from the kept pre-trained players);
  closed-form models (``Model.closed_form``) fit once. A model for which no
  fit recorded lengths keeps ``checked`` as its final.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import EpochCallback, Model
from training.pipeline import TrainResult, train_model

#: What ``plan`` answers for each kind of model.
EPOCHS, ONCE, SLICE = "epochs", "once", "slice"


def validated_epochs(best_epochs: Sequence[int | None]) -> int | None:
    """The epoch count to refit for: the mean best epoch over the validation fits
    (the search's trial and each confirmation fold), rounded; None if none recorded one."""
    known = [int(e) for e in best_epochs if e is not None and e > 0]
    return max(1, round(statistics.fmean(known))) if known else None


def validated_lengths(recorded: Sequence[dict[str, int] | None]) -> dict[str, int] | None:
    """The length settings to refit with: each setting's mean over the fits that recorded
    lengths (the search's trial and each confirmation fold), rounded; None if none did.

    Averaged per setting, as ``validated_epochs`` averages one count: a fold where
    IRGAN's game did not help records ``game_epochs`` 0 and pulls the mean down."""
    known = [r for r in recorded if r]
    if not known:
        return None
    names = dict.fromkeys(name for r in known for name in r)
    return {n: round(statistics.fmean(r[n] for r in known if n in r)) for n in names}


def describe_lengths(lengths: dict[str, int] | None) -> str:
    """``lengths`` for a progress line: "24 epochs", "pretrain_epochs 38, game_epochs 20"."""
    if not lengths:
        return ""
    if set(lengths) == {"epochs"}:
        return f"{lengths['epochs']} epochs"
    return ", ".join(f"{name} {count}" for name, count in lengths.items())


def plan(model_cls: type[Model], lengths: dict[str, int] | None) -> str:
    """How ``model_cls`` is refitted: ``EPOCHS`` (all data, ``lengths`` fixed), ``ONCE``
    (all data, closed form) or ``SLICE`` (as ``genrec train``, the slice picks the epoch)."""
    if model_cls.closed_form:
        return ONCE
    return EPOCHS if lengths else SLICE


@dataclass
class Refit:
    """The saved fit and the one the gate measured (the same object for ``SLICE``)."""

    final: TrainResult
    checked: TrainResult
    plan: str
    lengths: dict[str, int] | None  # the validated length settings the final fit ran

    @property
    def record(self) -> dict[str, Any]:
        """The manifest's ``training["refit"]``: how the saved model was fitted."""
        return {
            "plan": self.plan,
            "data": "held-out slice kept out" if self.plan == SLICE else "all",
            "lengths": self.lengths,
            "checked_on_slice": self.checked.holdout,
            "checked_best_epoch": self.checked.report.best_epoch,
        }

    def to_save(self) -> TrainResult:
        """What ``save_trained`` writes: the final model, with the checked fit's figures on
        the slice (an all-data fit has none of its own) and the slice it did not hold out."""
        if self.final is self.checked:
            return self.final
        return dataclasses.replace(
            self.final,
            metrics=dict(self.checked.metrics),
            metric=self.checked.metric,
            higher_is_better=self.checked.higher_is_better,
            holdout=None,
            by_activity=self.checked.by_activity,
        )


def refit_winner(
    model: str,
    settings: dict[str, Any],
    data: Interactions,
    lengths: dict[str, int] | None,
    callbacks: list[EpochCallback] | None = None,
) -> Refit:
    """Fit the checked (slice held out) and the final (all data) form of the winner."""
    cls = model_class(model)
    how = plan(cls, lengths)
    checked = train_model(model, data, settings, callbacks=callbacks)
    if how == SLICE:
        return Refit(checked, checked, how, None)
    kept = lengths if how == EPOCHS else None
    return Refit(final_fit(model, settings, data, kept, callbacks), checked, how, kept)


def final_fit(
    model: str,
    settings: dict[str, Any],
    data: Interactions,
    lengths: dict[str, int] | None,
    callbacks: list[EpochCallback] | None = None,
) -> TrainResult:
    """The winner fitted on all of ``data``: for ``lengths`` (``EPOCHS``) or once."""
    how = plan(model_class(model), lengths)
    if how == SLICE:
        raise ValueError(f"{model}: its epochs are chosen on a held-out slice, not fixed")
    fixed = {**settings, **(lengths or {})} if how == EPOCHS else dict(settings)
    return train_model(model, data, fixed, callbacks=callbacks, holdout=0.0)
