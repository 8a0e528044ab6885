"""Measure a stored version again, without retraining, on the slice it was not trained on.

``training.pipeline`` fits every version on its data minus a per-user
held-out slice and records in ``manifest.training["holdout"]`` how that
slice was drawn (fraction, seed, minimum per user) and the slice's own
fingerprint. Given the same data, the slice is drawn again and compared
with that fingerprint, and the stored scorer is measured on it exactly as
training measured it (``pipeline.validation_on``). So the figure can never
count an interaction the version was fitted on: when the data, its record
order or the record of the split do not match, ``StoredEvaluationError``
says which, instead of a figure.

The slice also picked the kept epoch, so these are the version's
validation figures (they equal the manifest's metrics, but for a rating
version saved while held-out pairs it could not predict counted as 3: they
now count as served, ``evaluate.serving_baseline``); comparing models on an
untouched test set is what the protocols (``training.protocols``) do.

The slice is drawn over one record per (user, item) pair
(``pipeline.draw_holdout``). A version written before that drew it over
every record; on data without repeated pairs both draws are the same, on
data with them its slice held copies of pairs it was trained on, and it is
refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models_store import LoadedVersion, Manifest, ModelStore
from training.data.interactions import Interactions
from training.models import model_class, stored_scorer
from training.models.base import Scorer
from training.pipeline import HOLDOUT_PAIRS, draw_holdout, measure, validation_on
from training.segments import ByActivity


class StoredEvaluationError(ValueError):
    """A stored version cannot be measured on this data without leaking; the message says why."""


@dataclass(frozen=True)
class StoredEvaluation:
    """Figures of one stored version on its held-out slice."""

    model: str
    version: str
    source: str
    n_train: int
    n_heldout: int
    metrics: dict[str, float]
    #: The figures per user-activity segment (``training.segments``).
    by_activity: ByActivity | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "data": self.source,
            "n_train": self.n_train,
            "n_heldout": self.n_heldout,
            "metrics": dict(self.metrics),
            "by_activity": None if self.by_activity is None else self.by_activity.to_dict(),
        }


def split_ref(spec: str) -> tuple[str, str | None]:
    """``"NAME@VERSION"`` -> (NAME, VERSION); a plain name -> (name, None).

    VERSION is a version number or an alias (``production``).
    """
    name, sep, ref = spec.partition("@")
    if sep and (not name or not ref):
        raise StoredEvaluationError(
            f"model {spec!r}: write NAME@VERSION, e.g. ease@3 or ease@production"
        )
    return name, (ref if sep else None)


def evaluate_stored(
    store: ModelStore, model: str, ref: str, data: Interactions, source: str = ""
) -> StoredEvaluation:
    """Measure ``model``'s version ``ref`` (number or alias) on the slice of ``data`` it held out."""
    return evaluate_loaded(open_stored(store, model, ref), data, source)


def open_stored(store: ModelStore, model: str, ref: str) -> LoadedVersion:
    """``model``'s version ``ref``, read and verified (manifest, file set, checksums), that
    records a held-out slice: what ``evaluate_loaded`` needs besides the data.

    A caller that still has to load the data calls it first: a broken version then fails
    at once, not after a data load that may take minutes.
    """
    loaded = store.load(model, store.resolve(model, ref))
    _holdout_record(loaded.manifest, _what(loaded.manifest))
    return loaded


def evaluate_loaded(
    loaded: LoadedVersion, data: Interactions, source: str = ""
) -> StoredEvaluation:
    """``evaluate_stored`` for a version ``open_stored`` gave."""
    manifest = loaded.manifest
    what = _what(manifest)
    record = _holdout_record(manifest, what)
    _check_same_data(manifest, loaded, data, what)
    _check_pairs(record, data, what)
    train, heldout = draw_holdout(
        data,
        fraction=float(record["fraction"]),
        seed=int(record["seed"]),
        min_per_user=int(record["min_per_user"]),
    )
    if heldout.fingerprint() != record.get("fingerprint"):
        raise StoredEvaluationError(
            f"{what}: the held-out slice drawn again from this data is not the one it was "
            "trained without (same records, but in a different order?); measuring on it would "
            "count interactions the version was fitted on"
        )
    validation = validation_on(model_class(manifest.model), data, train, heldout)
    metrics, by_activity = measure(validation, _scorer(loaded))
    return StoredEvaluation(
        model=manifest.model,
        version=manifest.version,
        source=source or manifest.data.source,
        n_train=len(train),
        n_heldout=len(heldout),
        metrics={k: float(v) for k, v in metrics.items()},
        by_activity=by_activity,
    )


def _what(manifest: Manifest) -> str:
    return f"{manifest.model} version {manifest.version}"


def _holdout_record(manifest: Manifest, what: str) -> dict[str, Any]:
    if "holdout" not in manifest.training:
        raise StoredEvaluationError(
            f"{what} does not record how its held-out slice was drawn (it was written by an "
            "older genrec), so the part of the data it was not trained on is unknown; retrain "
            "it, or evaluate the model with --protocol"
        )
    record = manifest.training["holdout"]
    if record is None:
        why = (
            "genrec tune refits its winner on everything; its manifest's metrics are those of "
            "the same settings fitted with the slice held out"
            if (manifest.training.get("refit") or {}).get("data") == "all"
            else "too few to hold out a slice"
        )
        raise StoredEvaluationError(
            f"{what} was trained on all {manifest.data.n_interactions} interactions of its data "
            f"({why}), so there is no data it has not seen to measure it on"
        )
    if not isinstance(record, dict) or not {"fraction", "seed", "min_per_user"} <= set(record):
        raise StoredEvaluationError(f"{what}: its manifest's training.holdout is malformed")
    return record


def _check_same_data(
    manifest: Manifest, loaded: LoadedVersion, data: Interactions, what: str
) -> None:
    if data.fingerprint() != manifest.data.fingerprint:
        raise StoredEvaluationError(
            f"{what} was trained on other data ({manifest.data.source!r}: "
            f"{manifest.data.n_interactions:,} interactions) than the {len(data):,} given; "
            "its held-out slice can only be drawn again from the same data"
        )
    contents = loaded.contents
    if list(contents.user_ids) != list(data.user_ids.ids) or list(contents.item_ids) != list(
        data.item_ids.ids
    ):
        raise StoredEvaluationError(f"{what}: the data's id maps differ from the version's")


def _check_pairs(record: dict[str, Any], data: Interactions, what: str) -> None:
    """A slice drawn over every record (genrec before repeated pairs were merged) is the one
    drawn now only when no (user, item) pair of the data is repeated."""
    if record.get("pairs") == HOLDOUT_PAIRS:
        return
    repeats = len(data) - len(data.latest_per_pair())
    if repeats:
        raise StoredEvaluationError(
            f"{what} was trained by an older genrec, which drew its held-out slice from every "
            f"record: {repeats:,} records of this data repeat a (user, item) pair, so its slice "
            "and training part shared pairs and its figures count interactions it was fitted "
            "on; retrain it to measure it"
        )


def _scorer(loaded: LoadedVersion) -> Scorer:
    """The stored scorer on the CPU, built from its safetensors tensors (never a pickle)."""
    manifest = loaded.manifest
    return stored_scorer(manifest.model, manifest.scorer_config, loaded.contents.tensors)
