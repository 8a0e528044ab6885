"""data -> model -> artifact: the one path every trained version takes.

``genrec train`` (``app/cli``) and the tests call ``train_and_save``; the
retrain worker (``app/retrain/runner.py``) calls its parts
(``holdout_validation``, ``train_model``, ``version_contents``,
``data_info``) and writes the version itself, because it also scores
production on the same held-out slice and records the job and the gate's
decision in the manifest. Either way a
version has the same contents: a model fitted on all but a per-user
held-out slice (which selects the epoch and, measured on the saved scorer
after the fit, gives the manifest's metrics),
the full interaction matrix as the fold-in / seen-item history, the id maps
of the data it was trained on, and in ``training["holdout"]`` how that slice
was drawn, so ``training.stored_evaluation`` can draw it again later. Fits
and slices see one record per (user, item) pair, its latest
(``Interactions.latest_per_pair``), as the stored history does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from models_store import (
    DataInfo,
    Manifest,
    ModelStore,
    StoreError,
    VersionContents,
    iso_utc,
    non_finite,
)
from training import ann, distributed
from training.data.interactions import Interactions
from training.data.splits import per_user_holdout
from training.evaluate import rating_validation, topk_validation
from training.models import model_class
from training.models.base import (
    EpochCallback,
    FitReport,
    Model,
    ModelError,
    Scorer,
    Validation,
)
from training.segments import ByActivity

#: Fraction of each user's interactions held out to select the epoch and score the version.
HOLDOUT_FRACTION = 0.1
#: Cut-offs of the held-out top-k metrics; the first selects epochs and gates promotion.
TOPK_CUTOFFS = (10, 20)
#: Each user with more records than this holds out at least this many; others keep all.
HOLDOUT_MIN_PER_USER = 2
#: Data with fewer (user, item) pairs than this trains on everything, without a held-out slice.
HOLDOUT_MIN_RECORDS = 50
#: ``training.holdout["pairs"]``: the slice was drawn over the latest record of each pair.
#: A record without it was drawn over every record (before repeated pairs were merged).
HOLDOUT_PAIRS = "latest"
#: ``training["log_read_at"]``: the instant the interaction log was read up to (the
#: version's ``data.cutoff`` too), for a version that read it (``save_trained``). Serving
#: dates erasures against it (``app.serving.erased``): without it, a version is taken
#: to hold the rows of every erased user.
LOG_READ_AT = "log_read_at"
#: ``training["by_activity"]``: the held-out figures per user-activity segment,
#: ``{"edges": [...], "segments": [{"label", "users", "metrics"}, ...]}``.
BY_ACTIVITY = "by_activity"


@dataclass
class TrainResult:
    """A fitted model, its serving form and how it scored on the held-out slice."""

    model: Model
    scorer: Scorer
    report: FitReport
    metrics: dict[str, float]
    metric: str | None  # the key in ``metrics`` that selects / gates
    higher_is_better: bool
    #: How the held-out slice was drawn (``holdout_record``); None: trained on everything.
    holdout: dict[str, Any] | None = None
    #: ``metrics`` per activity segment (``training.segments``); None: no slice, or
    #: measured on several processes (their per-segment figures are not reduced).
    by_activity: ByActivity | None = None


def holdout_split(
    data: Interactions, seed: int = 0, fraction: float = HOLDOUT_FRACTION
) -> tuple[Interactions, Interactions] | None:
    """(train, held-out) per-user split; None when the data is too small to spare a slice.

    Data too small to spare a slice (a handful of interactions) trains on
    everything without validation rather than failing.
    """
    if fraction <= 0:
        return None
    train, heldout = draw_holdout(data, fraction, seed, HOLDOUT_MIN_PER_USER)
    if len(train) + len(heldout) < HOLDOUT_MIN_RECORDS or len(heldout) == 0:
        return None
    return train, heldout


def draw_holdout(
    data: Interactions, fraction: float, seed: int, min_per_user: int
) -> tuple[Interactions, Interactions]:
    """The per-user slice, drawn over one record per (user, item) pair (the latest).

    The one place the slice is drawn, for training, the retrain gate and
    ``training.stored_evaluation`` alike. Drawn over records, a pair logged
    twice had one copy on each side: held out, it was masked as seen or its
    rating leaked, so every figure was meaningless (popularity's NDCG@10 on
    such a log: 0.0000, 0.1642 on the same log without the repeats).
    """
    return per_user_holdout(
        data.latest_per_pair(), fraction=fraction, seed=seed, min_per_user=min_per_user
    )


def holdout_record(heldout: Interactions, seed: int, fraction: float) -> dict[str, Any]:
    """What the manifest keeps about the slice: enough to draw it again and prove it is the same."""
    return {
        "fraction": fraction,
        "seed": seed,
        "min_per_user": HOLDOUT_MIN_PER_USER,
        "pairs": HOLDOUT_PAIRS,
        "n_interactions": len(heldout),
        "fingerprint": heldout.fingerprint(),
    }


def validation_on(
    model_cls: type[Model], data: Interactions, train: Interactions, heldout: Interactions
) -> Validation:
    """The model's own measure on the held-out slice: RMSE for rating models, else top-k.

    On several processes each rank measures its share of the held-out users
    and the figures are reduced across ranks (``rank_validation``).
    """
    if distributed.active():
        return rank_validation(model_cls, data, train, heldout)
    return _validation(model_cls, data, train, heldout)


def rank_validation(
    model_cls: type[Model], data: Interactions, train: Interactions, heldout: Interactions
) -> Validation:
    """This rank's share of the held-out users, its metrics reduced with every other rank's."""
    users = np.unique(heldout.users)
    rank, size = distributed.rank(), distributed.world_size()
    if len(users) < size:
        raise distributed.DistributedError(
            f"{len(users)} users hold out validation data; {size} processes need at least {size}"
        )
    share = heldout.subset(np.isin(heldout.users, users[rank::size]))
    local = _validation(model_cls, data, train, share)
    rating = model_cls.task == "ratings" and data.explicit
    weight = float(len(share) if rating else len(users[rank::size]))

    def evaluate(scorer: Scorer) -> dict[str, float]:
        return distributed.reduce_metrics(local.evaluate(scorer), weight)

    return Validation(
        evaluate=evaluate, metric=local.metric, higher_is_better=local.higher_is_better
    )


def _validation(
    model_cls: type[Model], data: Interactions, train: Interactions, heldout: Interactions
) -> Validation:
    if model_cls.task == "ratings" and data.explicit:
        return rating_validation(train.to_csr(), heldout)
    # Users are passed by index so models with per-user parameters use them, as serving does.
    # A catalogue smaller than a cut-off (a tiny log) is ranked whole instead of failing.
    ks = tuple(sorted({min(k, data.n_items) for k in TOPK_CUTOFFS}))
    return topk_validation(
        train.to_csr(),
        heldout.to_csr(values="ones"),
        metric=f"ndcg@{ks[0]}",
        ks=ks,
        metrics=("ndcg", "recall"),
        users=np.arange(data.n_users),
    )


def holdout_validation(
    model_cls: type[Model], data: Interactions, seed: int = 0, fraction: float = HOLDOUT_FRACTION
) -> tuple[Interactions, Validation | None]:
    """Split off a per-user slice and build the model's own validation on it."""
    split = holdout_split(data, seed, fraction)
    if split is None:
        return data, None
    train, heldout = split
    return train, validation_on(model_cls, data, train, heldout)


def train_model(
    model_name: str,
    data: Interactions,
    overrides: dict[str, Any] | None = None,
    callbacks: list[EpochCallback] | None = None,
    holdout: float = HOLDOUT_FRACTION,
) -> TrainResult:
    """Fit ``model_name`` on ``data`` minus a held-out slice that selects the epoch.

    The fit sees one record per (user, item) pair, its latest, with a slice or
    without (``holdout=0``, ``genrec tune``'s all-data refit): the history
    the version stores and serves keeps only that one.
    """
    cls = model_class(model_name)
    config = cls.Config().with_overrides(overrides or {})
    model = cls(config)
    split = holdout_split(data, seed=config.seed, fraction=holdout)
    if split is None:
        train, validation = data.latest_per_pair(), None
    else:
        train, validation = split[0], validation_on(cls, data, *split)
    report = model.fit(train, validation=validation, callbacks=callbacks)
    scorer = model.to_scorer()
    # The figures are those of the scorer saved and served, measured on the slice once
    # more, not the kept epoch's: a model may change after its last validated epoch
    # (i-cf-nade re-fits every user's rows to the final item codes, ``refit_users``),
    # and its kept epoch's RMSE then described a model no version holds.
    metrics, by_activity = measure(validation, scorer)
    return TrainResult(
        model=model,
        scorer=scorer,
        report=report,
        metrics={k: float(v) for k, v in metrics.items()},
        metric=validation.metric if validation else None,
        higher_is_better=validation.higher_is_better if validation else True,
        holdout=None if split is None else holdout_record(split[1], config.seed, holdout),
        by_activity=by_activity,
    )


def measure(
    validation: Validation | None, scorer: Scorer
) -> tuple[dict[str, float], ByActivity | None]:
    """The figures of ``scorer`` on the slice, and per activity segment where the
    validation gives them, in one pass (``{}, None`` without a slice)."""
    if validation is None:
        return {}, None
    if validation.evaluate_by_activity is not None:
        return validation.evaluate_by_activity(scorer)
    return validation.evaluate(scorer), None


def version_contents(scorer: Scorer, data: Interactions) -> VersionContents:
    """What the store keeps: scorer tensors, id maps, full history, item titles."""
    history = data.to_csr()
    extra: dict[str, bytes] = {}
    if data.item_meta:
        extra["items.json"] = json.dumps(data.item_meta, ensure_ascii=False).encode("utf-8")
    return VersionContents(
        tensors={k: v.detach().cpu().numpy() for k, v in scorer.tensors().items()},
        user_ids=list(data.user_ids.ids),
        item_ids=list(data.item_ids.ids),
        history={
            "indptr": history.indptr.astype(np.int64),
            "indices": history.indices.astype(np.int64),
            "values": history.data.astype(np.float32),
        },
        extra=extra,
    )


def _finite_or_none(values: Mapping[str, float]) -> dict[str, float | None]:
    """An epoch's figures for the manifest (JSON): NaN or infinite as null. A loss that
    diverged after the best epoch leaves a servable version (the best epoch's weights)
    whose curve still shows where it went wrong; the dashboard draws a null as a gap."""
    return {name: (value if np.isfinite(value) else None) for name, value in values.items()}


def _all_finite(value: Any) -> bool:
    """No NaN or infinity in a scorer config value (numbers, numpy scalars, nested lists)."""
    if isinstance(value, float | np.floating):
        return bool(np.isfinite(value))
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True


def refuse_non_finite(model_name: str, contents: VersionContents, result: TrainResult) -> None:
    """A diverged training (a learning rate far too large) leaves NaN or infinite
    weights, metrics or scorer constants; saved, they failed later as a FAISS traceback
    while building the index or as "not JSON-serialisable", and no server could serve
    them. Say what happened instead."""
    bad = non_finite(contents.tensors)  # the store's rule: it refuses them on load too
    bad += [f"metric {name}" for name, value in result.metrics.items() if not np.isfinite(value)]
    bad += [
        f"scorer setting {name}"
        for name, value in result.scorer.config.items()
        if not _all_finite(value)
    ]
    if bad:
        raise ModelError(
            f"{model_name}: training diverged: {', '.join(bad)} hold NaN or infinite values; "
            "nothing was saved (try a smaller lr, or look for extreme ratings in the data)"
        )


def data_info(data: Interactions, source: str) -> DataInfo:
    cutoff = (
        datetime.fromtimestamp(int(data.timestamps.max()), tz=UTC).isoformat()
        if len(data) and data.timestamps.max() > 0
        else None
    )
    return DataInfo(
        fingerprint=data.fingerprint(),
        cutoff=cutoff,
        source=source,
        n_users=data.n_users,
        n_items=data.n_items,
        n_interactions=len(data),
    )


def save_trained(
    store: ModelStore,
    model_name: str,
    result: TrainResult,
    data: Interactions,
    source: str,
    *,
    log_read_at: datetime | None = None,
    training: Mapping[str, Any] | None = None,
) -> Manifest:
    """Write ``result`` as a new immutable version of ``model_name``.

    The one writer of a trained version, for the CLI and the retrain worker
    alike, so their manifests cannot drift apart. ``log_read_at``: the instant
    the interaction log was read up to (``training.data.log_reader.log_cutoff``),
    for data read from it (a retrain or tune job, ``genrec train|tune --data db``):
    it is the version's cutoff instead of the data's newest timestamp (serving
    folds in exactly the rows that read did not take, ``training.data.cutoff``),
    and it is recorded as ``training["log_read_at"]``, which serving dates
    erasures against. ``training`` adds to the manifest's training record (a
    job's id, attempt and gate).
    """
    info = data_info(data, source)
    read: dict[str, str] = {}
    if log_read_at is not None:
        read[LOG_READ_AT] = iso_utc(log_read_at)
        info = replace(info, cutoff=read[LOG_READ_AT])
    contents = version_contents(result.scorer, data)
    refuse_non_finite(model_name, contents, result)
    with store.scratch(model_name) as scratch:
        # Inner-product models get their approximate-retrieval indexes now, so a
        # version is servable with GENREC_ANN from the moment it is published; the
        # retrieval index's breadth is measured on sampled users of this history.
        index = ann.build_for_scorer(
            result.scorer, scratch, len(contents.item_ids), history=contents.history
        )
        return store.save(
            model_name,
            contents,
            scorer_config=result.scorer.config,
            hyper_parameters=result.model.config.to_dict(),
            metrics=result.metrics,
            data=info,
            training={
                "seconds": round(result.report.seconds, 3),
                "seconds_per_epoch": round(result.report.seconds_per_epoch, 4),
                "best_epoch": result.report.best_epoch,
                "epochs_run": result.report.epochs_run,
                "selection_metric": result.metric,
                "higher_is_better": result.higher_is_better,
                "holdout": result.holdout,
                # The held-out figures per user-activity segment (``training.segments``);
                # absent from versions written before it was recorded.
                **(
                    {}
                    if result.by_activity is None
                    else {BY_ACTIVITY: result.by_activity.to_dict()}
                ),
                # Per-epoch losses and validation metrics: the dashboard draws them.
                "curve": [
                    {
                        "epoch": epoch.epoch,
                        "losses": _finite_or_none(epoch.losses),
                        "metrics": _finite_or_none(epoch.metrics),
                        "seconds": round(epoch.seconds, 4),
                    }
                    for epoch in result.report.history
                ],
                **read,
                **(training or {}),
            },
            retrieval=None if index is None else index[1],
            index_files=None if index is None else index[0],
        )


def promote_saved(store: ModelStore, manifest: Manifest) -> None:
    """Point ``production`` at a version just saved; a ``StoreError`` that says the version
    was saved. Why: the promotion's own error (an unreadable alias file, say) was the only
    line, so the operator never learnt the version existed, and retrying the command saved
    one more."""
    try:
        store.promote(manifest.model, manifest.version)
    except StoreError as exc:
        raise StoreError(
            f"saved {manifest.model} version {manifest.version}, but did not promote it: {exc}"
        ) from exc


def train_and_save(
    store: ModelStore,
    model_name: str,
    data: Interactions,
    overrides: dict[str, Any] | None = None,
    source: str = "",
    promote: bool = False,
    callbacks: list[EpochCallback] | None = None,
    holdout: float = HOLDOUT_FRACTION,
    log_read_at: datetime | None = None,
) -> Manifest:
    """Train, save a new version, and optionally point ``production`` at it; ``log_read_at``
    as ``save_trained`` takes it.

    On several processes (``training.distributed``) every rank trains and
    rank 0 alone writes (and promotes) the version; every rank returns its
    manifest (sent from rank 0: other machines need not see the store).
    """
    distributed.check_same(data.fingerprint(), "the training data's fingerprint")
    result = train_model(model_name, data, overrides, callbacks, holdout=holdout)
    manifest: Manifest | None = None
    if distributed.is_main():
        manifest = save_trained(store, model_name, result, data, source, log_read_at=log_read_at)
        if promote:
            promote_saved(store, manifest)
    manifest = distributed.broadcast_from_main(manifest)
    assert manifest is not None  # rank 0 always saves before the broadcast
    return manifest
