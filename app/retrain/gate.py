"""The evaluation gate: is the new version at least as good as production on the same slice?

The candidate's figure is the one the pipeline selected it on: its own metric
(``ndcg@10`` for ranking models, RMSE for rating models) on the per-user
held-out slice of the job's data. Production is scored on *that same slice,
with that same code*: ``ProductionOnSlice`` wraps the production scorer so it
looks like a scorer over the job's index space, and the pipeline's own
``Validation`` runs on it.

The production artifact may not know every user or item of the new data.
Users it knows and who have no training-part interaction after its cutoff
keep their index (as serving would answer them); everyone else is folded in
from their training-part history (``users=-1``), exactly as serving folds in
logged interactions. Items it does not know cannot be recommended by it: they
score -inf, and a rating model predicts for them what serving answers
(``app.serving.recommend.prediction_baseline``): the user's mean rating, else
production's mean training rating. (The middle of the range, which it used to
predict, is not what production serves; on a 1-5 scale it cost production
RMSE on every new item and let a worse candidate through.)

Since new data normally keeps the base data's records first and in order, the
per-user hold-out (random keys per record position, same seed) picks the same
records for unchanged users as production's own training did, so production is
not scored on interactions it was trained on. A production fitted on all its
data (``genrec tune``'s winners, ``training.tuning.refit``) held nothing out:
both sides are then scored on the slice's records newer than its cutoff only
(``gate_figures``), and so is a production whose slice was drawn otherwise
(another seed or fraction, or before the draw took one record per pair:
``same_draw``), which was trained on some of this slice's records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import torch
from torch import Tensor

from app.retrain.lifecycle import PromotePolicy
from app.serving.loaded import LoadedModel, ModelLoadError, build_loaded_model
from models_store import Manifest, ModelStore, StoreError
from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import History, Scorer, Validation
from training.pipeline import TrainResult, validation_on

#: Relative slack: a candidate this close to production counts as "not worse" (noise).
GATE_TOLERANCE = 1e-3
#: Fewest held-out records after an all-data production's cutoff the gate compares on.
MIN_FRESH_RECORDS = 20


class ProductionOnSlice(Scorer):
    """A production scorer seen through the job's id maps (users and items remapped).

    ``user_map[u]`` is the production index of job user ``u`` or -1 (fold in);
    ``item_map[i]`` the production index of job item ``i`` or -1 (unknown to it).
    ``training_mean`` is production's mean training rating (serving's baseline for a
    user with no ratings).

    Its state is production's state with one more column, the user's serving baseline
    (the mean of the history row it was folded from), which ``predict`` gives the
    items production does not know.
    """

    name = "production-on-slice"

    def __init__(
        self,
        inner: Scorer,
        user_map: np.ndarray,
        item_map: np.ndarray,
        training_mean: float | None = None,
    ) -> None:
        super().__init__({"n_items": len(item_map), "rating_range": list(inner.rating_range)}, {})
        self.inner = inner
        self.user_map = torch.as_tensor(user_map, dtype=torch.int64, device=inner.device)
        self.item_map = torch.as_tensor(item_map, dtype=torch.int64, device=inner.device)
        low, high = self.rating_range
        self.training_mean = (low + high) / 2 if training_mean is None else training_mean
        self._inner_dtype = torch.float32

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) job user indices + (B, I_job) histories -> production state (B, D)."""
        users = users.to(self.device)
        prod_users = torch.where(users >= 0, self.user_map[users.clamp(min=0)], -1)
        state = self.inner.user_state(prod_users, self._remap_history(history))
        self._inner_dtype = state.dtype
        return torch.cat([state.float(), self._baselines(history)[:, None]], dim=1)

    def _baselines(self, history: History) -> Tensor:
        """(B,) each row's mean rating (every item of it, known to production or not, as
        serving's user mean counts them), else the training mean; clipped to the range."""
        rows = history.row_ids().to(self.device)
        values = history.values.to(self.device, torch.float64)
        counts = torch.bincount(rows, minlength=history.batch_size)
        sums = torch.zeros(history.batch_size, dtype=torch.float64, device=self.device)
        sums.index_add_(0, rows, values)
        means = torch.where(counts > 0, sums / counts.clamp(min=1), self.training_mean)
        low, high = self.rating_range
        return means.clamp(low, high).float()

    def _inner_state(self, state: Tensor) -> Tensor:
        return state[:, :-1].to(self._inner_dtype)

    def _remap_history(self, history: History) -> History:
        """Columns into production's item space; items it does not know are dropped."""
        mapped = self.item_map[history.indices.to(self.device)]
        keep = mapped >= 0
        rows = history.row_ids().to(self.device)[keep]
        counts = torch.bincount(rows, minlength=history.batch_size)
        indptr = torch.zeros(history.batch_size + 1, dtype=torch.int64, device=self.device)
        indptr[1:] = torch.cumsum(counts, 0)
        return History(
            indptr, mapped[keep], history.values.to(self.device)[keep], self.inner.n_items
        )

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, I_job) or (B, C): production's scores; items it does not know score -inf."""
        fill = torch.full((state.shape[0], 1), -math.inf, device=self.device)
        return self._spread(self.inner.score, state, items, fill)

    def predict(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """Production's predicted ratings; serving's baseline for items it does not know."""
        return self._spread(self.inner.predict, state, items, state[:, -1:])

    def _spread(
        self,
        fn: Callable[[Tensor, Tensor | None], Tensor],
        state: Tensor,
        items: Tensor | None,
        fill: Tensor,
    ) -> Tensor:
        """``fn`` on the items production knows; ``fill`` (B, 1) for the others."""
        wanted = (
            torch.arange(self.n_items, device=self.device)
            if items is None
            else items.to(self.device)
        )
        mapped = self.item_map[wanted]
        known = mapped >= 0
        out = fill.float().expand(state.shape[0], len(wanted)).clone()
        if bool(known.any()):
            out[:, known] = fn(self._inner_state(state), mapped[known]).float()
        return out


def production_on_slice(
    production: LoadedModel, data: Interactions, train: Interactions
) -> ProductionOnSlice:
    """Wrap ``production`` for the job's data; ``train`` is the slice's training part."""
    user_map = np.array(
        [production.user_index.get(u, -1) for u in data.user_ids.ids], dtype=np.int64
    )
    item_map = np.array(
        [production.item_index.get(i, -1) for i in data.item_ids.ids], dtype=np.int64
    )
    changed = _users_after(train, production.cutoff)
    user_map[changed] = -1  # serving folds these in from training row ∪ newer log
    return ProductionOnSlice(production.scorer, user_map, item_map, production.training_mean)


def _users_after(train: Interactions, cutoff: datetime | None) -> np.ndarray:
    """Indices of users with a training-part interaction after ``cutoff``."""
    if cutoff is None:
        return np.zeros(0, dtype=np.int64)
    late = train.timestamps > int(cutoff.timestamp())
    return np.unique(train.users[late])


@dataclass(frozen=True)
class GateResult:
    """The comparison that decided promotion; stored in the job and the manifest."""

    policy: PromotePolicy
    metric: str | None
    higher_is_better: bool
    candidate: float | None
    production: float | None
    production_version: str | None
    tolerance: float
    promote: bool
    reason: str
    production_metrics: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def not_worse(candidate: float, production: float, higher_is_better: bool) -> bool:
    """``candidate`` is no worse than ``production`` up to ``GATE_TOLERANCE`` (relative)."""
    slack = GATE_TOLERANCE * max(abs(production), 1e-12)
    if higher_is_better:
        return candidate >= production - slack
    return candidate <= production + slack


def evaluate_production(
    store: ModelStore,
    model: str,
    data: Interactions,
    train: Interactions,
    validation: Validation,
    device: torch.device,
    version: str | None = None,
) -> tuple[str, dict[str, float]] | None:
    """(production version, its metrics on the job's slice); None when there is no production.
    ``version``: the production version already resolved (else the alias is read here)."""
    version = version or store.alias_state(model)
    if version is None:
        return None
    production = build_loaded_model(store.load(model, version), device)
    with torch.inference_mode():
        return version, validation.evaluate(production_on_slice(production, data, train))


@dataclass(frozen=True)
class GateFigures:
    """Both sides' figures on records neither was fitted on, or why there are none."""

    candidate: dict[str, float]
    production: tuple[str, dict[str, float]] | None
    error: str | None = None
    on: str = "the same slice"  # which records, for the gate's reason

    def decide(
        self, policy: PromotePolicy, metric: str | None, higher_is_better: bool
    ) -> GateResult:
        """``decide`` on these figures."""
        return decide(
            policy, metric, higher_is_better, self.candidate, self.production, self.error, self.on
        )


#: What decides which records a per-user hold-out picks (``training.pipeline.holdout_record``).
DRAW_KEYS = ("fraction", "seed", "min_per_user", "pairs")


def same_draw(theirs: Mapping[str, Any] | None, ours: Mapping[str, Any] | None) -> bool:
    """Whether two hold-outs were drawn alike, so that on data that keeps its records in
    order they hold out the same records. A version saved before a change of the draw
    (``pairs``: one record per pair since 2026-12-06) or trained with another seed or
    fraction held out other records, and was trained on some of this slice's."""
    if theirs is None or ours is None:
        return False
    return all(theirs.get(key) == ours.get(key) for key in DRAW_KEYS)


def fresh_records(
    manifest: Manifest, heldout: Interactions, drawn: Mapping[str, Any] | None = None
) -> Interactions:
    """The held-out records ``manifest``'s version has not seen: all of them when it held
    out the same slice (drawn alike: ``same_draw`` with ``drawn``, the job's draw), else
    those after its cutoff (it was fitted on all its data, or drew another slice)."""
    held = manifest.training.get("holdout")
    if held is not None and (drawn is None or same_draw(held, drawn)):
        return heldout
    cutoff = manifest.data.cutoff
    if cutoff is None:  # no timestamps: it saw everything it will ever be compared on
        return heldout.subset(np.zeros(len(heldout), dtype=bool))
    return heldout.subset(heldout.timestamps > int(datetime.fromisoformat(cutoff).timestamp()))


def gate_figures(
    store: ModelStore,
    model: str,
    data: Interactions,
    split: tuple[Interactions, Interactions] | None,
    candidate: TrainResult,
    device: torch.device,
) -> GateFigures:
    """The candidate's and production's figures on records neither was fitted on.

    ``split`` is the job's (training part, held-out slice); the candidate was
    fitted on the training part. A production that held out the same slice
    (every version ``genrec train`` and retraining save) is scored on all of
    it, against the candidate's own figures. A production fitted on all its
    data (a tuned winner, ``training.tuning.refit``) has seen the slice's
    older records, so both are scored on the records newer than its cutoff
    alone; with fewer than ``MIN_FRESH_RECORDS`` of them the comparison
    cannot be made, which blocks promotion under ``auto``. A production that
    cannot be loaded or scored is an ``error`` too.
    """
    try:
        return _gate_figures(store, model, data, split, candidate, device)
    except (StoreError, ModelLoadError, ValueError) as exc:
        return GateFigures(candidate.metrics, None, error=f"{type(exc).__name__}: {exc}")


def _gate_figures(
    store: ModelStore,
    model: str,
    data: Interactions,
    split: tuple[Interactions, Interactions] | None,
    candidate: TrainResult,
    device: torch.device,
) -> GateFigures:
    version = store.alias_state(model)
    if version is None:
        return GateFigures(candidate.metrics, None)
    if split is None:
        return GateFigures(candidate.metrics, (version, {}))
    train, heldout = split
    manifest = store.manifest(model, version)
    fresh = fresh_records(manifest, heldout, candidate.holdout)
    if len(fresh) == len(heldout):
        validation = validation_on(model_class(model), data, train, heldout)
        scored = evaluate_production(store, model, data, train, validation, device, version)
        return GateFigures(candidate.metrics, scored)
    if len(fresh) < MIN_FRESH_RECORDS:
        return GateFigures(
            candidate.metrics,
            None,
            error=(
                f"production v{version} {_fitted_on(manifest)} up to {manifest.data.cutoff}; "
                f"only {len(fresh)} held-out records are newer (the comparison needs "
                f"{MIN_FRESH_RECORDS})"
            ),
        )
    validation = validation_on(model_class(model), data, train, fresh)
    with torch.inference_mode():
        ours = validation.evaluate(candidate.scorer)
    # The version whose manifest chose the records, even if the alias moved meanwhile.
    scored = evaluate_production(store, model, data, train, validation, device, version)
    return GateFigures(ours, scored, on=f"the {len(fresh)} held-out records after its cutoff")


def _fitted_on(manifest: Manifest) -> str:
    """What a production scored on newer records only was fitted on, for the reason."""
    if manifest.training.get("holdout") is None:
        return "was fitted on all its data"
    return "held out another slice (drawn otherwise) of its data"


def decide(
    policy: PromotePolicy,
    metric: str | None,
    higher_is_better: bool,
    candidate: dict[str, float],
    production: tuple[str, dict[str, float]] | None,
    production_error: str | None = None,
    on: str = "the same slice",
) -> GateResult:
    """Apply the promotion policy to the two figures (see the module docstring).

    Under ``auto`` a production version that exists but could not be scored
    (``production_error``) blocks promotion: "not worse" cannot be shown.
    """
    cand = candidate.get(metric) if metric else None
    prod_version = production[0] if production else None
    prod_metrics = production[1] if production else None
    prod = prod_metrics.get(metric) if (prod_metrics and metric) else None

    def result(promote: bool, reason: str) -> GateResult:
        return GateResult(
            policy=policy,
            metric=metric,
            higher_is_better=higher_is_better,
            candidate=cand,
            production=prod,
            production_version=prod_version,
            tolerance=GATE_TOLERANCE,
            promote=promote,
            reason=reason,
            production_metrics=prod_metrics,
        )

    if policy == "always":
        return result(True, "promote=always")
    if policy == "never":
        return result(False, "promote=never")
    if production_error is not None:
        return result(False, f"production could not be scored on the slice: {production_error}")
    if production is None:
        return result(True, "no production version yet")
    if cand is None or prod is None:
        return result(False, "no held-out slice to compare on (data too small)")
    better = not_worse(cand, prod, higher_is_better)
    word = "not worse than" if better else "worse than"
    return result(
        better,
        f"{metric} {cand:.5f} is {word} production v{prod_version} {prod:.5f} on {on}",
    )
