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
* ``final``: the version that is saved, fitted on all the data. For models
  with an ``epochs`` setting it runs exactly the validated count; closed-form
  models (``Model.closed_form``) fit once. A model whose epochs only a
  validation can pick (IRGAN's two phases) keeps ``checked`` as its final.
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


def plan(model_cls: type[Model], epochs: int | None) -> str:
    """How ``model_cls`` is refitted: ``EPOCHS`` (all data, ``epochs`` fixed), ``ONCE``
    (all data, closed form) or ``SLICE`` (as ``genrec train``, the slice picks the epoch)."""
    if model_cls.closed_form:
        return ONCE
    fields = {f.name for f in dataclasses.fields(model_cls.Config)}
    return EPOCHS if "epochs" in fields and epochs is not None else SLICE


@dataclass
class Refit:
    """The saved fit and the one the gate measured (the same object for ``SLICE``)."""

    final: TrainResult
    checked: TrainResult
    plan: str
    epochs: int | None  # the validated count the final fit ran (``EPOCHS``)

    @property
    def record(self) -> dict[str, Any]:
        """The manifest's ``training["refit"]``: how the saved model was fitted."""
        return {
            "plan": self.plan,
            "data": "held-out slice kept out" if self.plan == SLICE else "all",
            "epochs": self.epochs,
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
        )


def refit_winner(
    model: str,
    settings: dict[str, Any],
    data: Interactions,
    epochs: int | None,
    callbacks: list[EpochCallback] | None = None,
) -> Refit:
    """Fit the checked (slice held out) and the final (all data) form of the winner."""
    cls = model_class(model)
    how = plan(cls, epochs)
    checked = train_model(model, data, settings, callbacks=callbacks)
    if how == SLICE:
        return Refit(checked, checked, how, None)
    return Refit(final_fit(model, settings, data, epochs, callbacks), checked, how, epochs)


def final_fit(
    model: str,
    settings: dict[str, Any],
    data: Interactions,
    epochs: int | None,
    callbacks: list[EpochCallback] | None = None,
) -> TrainResult:
    """The winner fitted on all of ``data``: ``epochs`` epochs (``EPOCHS``) or once."""
    how = plan(model_class(model), epochs)
    if how == SLICE:
        raise ValueError(f"{model}: its epochs are chosen on a held-out slice, not fixed")
    fixed = {**settings, "epochs": epochs} if how == EPOCHS else dict(settings)
    return train_model(model, data, fixed, callbacks=callbacks, holdout=0.0)
