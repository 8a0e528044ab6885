"""Experiment protocols: each paper's way of measuring, run end to end with genrec's own code.

``PROTOCOLS[name].run(model_name, data_spec, *, seeds, overrides, data_dir,
callbacks, options) -> ProtocolReport``. A protocol loads the data, splits it
as its paper does, builds the model from ``training.models.REGISTRY`` with
``Config().with_overrides(overrides)`` (the seed set per run), fits it with
the protocol's validation for early stopping / selection, and measures the
kept epoch's ``Scorer`` with ``training.evaluate``. Each module holds only
its paper's part (``Options`` and ``plan``: the split per seed); the seed loop
is ``common.run_plan``, shared. ``options`` are the protocol's own settings
(e.g. ``heldout_users``), read into its ``Options``; see ``docs/protocols.md``.
"""

from __future__ import annotations

from training.protocols import (
    irgan,
    ratings_folds,
    ratings_random,
    ratings_split,
    strong_generalization,
    weak_generalization,
)
from training.protocols.common import Protocol, ProtocolError
from training.protocols.options import ProtocolOptions
from training.protocols.report import ProtocolReport, SeedRun

PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            strong_generalization.NAME,
            "Liang et al. 2018, Variational Autoencoders for Collaborative Filtering",
            "held-out users folded in; NDCG@100, Recall@20/50 (min(k,|rel|) recall)",
            strong_generalization.HEADLINE,
            strong_generalization.Options,
            strong_generalization.plan,
        ),
        Protocol(
            weak_generalization.NAME,
            "random 60/20/20 record split (top-k on known users)",
            "P/R/NDCG/MRR@5, selection on validation NDCG@5",
            weak_generalization.HEADLINE,
            weak_generalization.Options,
            weak_generalization.plan,
        ),
        Protocol(
            ratings_random.NAME,
            "Sedhain et al. 2015 (AutoRec); Zheng et al. 2016 (CF-NADE)",
            "random 90/10 rating split, RMSE/MAE, unseen pairs -> 3",
            ratings_random.HEADLINE,
            ratings_random.Options,
            ratings_random.plan,
            measures_ratings=True,
        ),
        Protocol(
            ratings_folds.NAME,
            "GroupLens ML-100K u1..u5 folds",
            "five fixed 80/20 folds, RMSE/MAE",
            ratings_random.HEADLINE,
            ratings_folds.Options,
            ratings_folds.plan,
            measures_ratings=True,
        ),
        Protocol(
            irgan.NAME,
            "Wang et al. 2017, IRGAN (authors' ML-100K files and code)",
            "ratings >= 4 are positives; P@3/5/10, NDCG@3/5/10",
            irgan.HEADLINE,
            irgan.Options,
            irgan.plan,
        ),
        Protocol(
            ratings_split.NAME,
            "Kim et al. 2016, Convolutional Matrix Factorization",
            "covering random 80/10/10 rating split, RMSE; train_fraction for sparsity",
            ratings_random.HEADLINE,
            ratings_split.Options,
            ratings_split.plan,
            measures_ratings=True,
        ),
    )
}


def protocol(name: str) -> Protocol:
    """The protocol called ``name``; ProtocolError listing the known ones otherwise."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ProtocolError(
            f"unknown protocol '{name}'; known: {', '.join(sorted(PROTOCOLS))}"
        ) from None


__all__ = [
    "PROTOCOLS",
    "Protocol",
    "ProtocolError",
    "ProtocolOptions",
    "ProtocolReport",
    "SeedRun",
    "protocol",
]
