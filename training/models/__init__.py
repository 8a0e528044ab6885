"""The model registry: the one place that maps a model name to its class.

Adding a model = one file in this package + one line here. Serving, the CLI,
the retrain worker and the contract tests all iterate over ``REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from training.models.autorec import IAutoRec, UAutoRec
from training.models.base import Model, ModelError, Scorer
from training.models.biased_mf import BiasedMF
from training.models.bpr import BPRMF
from training.models.cf_nade import CFNADE
from training.models.cf_rbm import CFRBM
from training.models.convmf import ConvMF
from training.models.ease import EASE
from training.models.i_cf_nade import ICFNADE
from training.models.irgan import IRGAN
from training.models.mult_dae import MultDAE
from training.models.mult_vae import MultVAE
from training.models.pmf import PMF
from training.models.popularity import Popularity

REGISTRY: dict[str, type[Model]] = {
    "popularity": Popularity,
    "bpr-mf": BPRMF,
    "irgan": IRGAN,
    "biased-mf": BiasedMF,
    "pmf": PMF,
    "convmf": ConvMF,
    "ease": EASE,
    "mult-vae": MultVAE,
    "mult-dae": MultDAE,
    "i-autorec": IAutoRec,
    "u-autorec": UAutoRec,
    "cf-nade": CFNADE,
    "i-cf-nade": ICFNADE,
    "cf-rbm": CFRBM,
}


def model_class(name: str) -> type[Model]:
    """Class registered under ``name``; ModelError listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model '{name}'; known: {', '.join(sorted(REGISTRY))}") from None


def trains_on_ratings(name: str) -> bool:
    """Whether model ``name`` predicts ratings, so trains and is measured on them alone: a read
    of the interaction log for it leaves out a mixed log's unrated rows, which would otherwise
    be ratings of 1.0 (``training.data.log_reader``, ``ratings_only``)."""
    return bool(model_class(name).scorer_cls.predicts_ratings)


def scorer_class(name: str) -> type[Scorer]:
    return model_class(name).scorer_cls


def stored_scorer(
    model: str, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> Scorer:
    """The scorer of a stored version from its safetensors arrays (never a pickle).

    The arrays are used in place when they are writable, aligned and
    contiguous, as the store's decoder gives them (each owns its buffer), and
    copied otherwise. Copying them all, as loading did until 2026-12-05,
    doubled the memory a version needs while it loads: 11 GB of peak memory
    to index a 2 GB million-item Mult-VAE (docs/performance.md).
    """
    tensors = {
        name: torch.from_numpy(np.require(array, requirements=["W", "A", "C"]))
        for name, array in arrays.items()
    }
    return scorer_class(model).from_tensors(config, tensors)
