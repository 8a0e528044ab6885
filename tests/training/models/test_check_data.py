"""``Model.check_data`` refuses exactly the data ``fit`` refuses as ``UnsuitableData``.

``genrec tune`` runs the check for every candidate before its search and leaves a
refused model out (docs/tuning.md), so the check must agree with the fit: a model
the check lets through and the fit then refuses costs trials, and one the check
refuses that would have trained is lost. Every registered model is fitted (one
epoch) on data shapes an operator's log can have, and the two verdicts compared.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from tests.training.models.conftest import make_structured
from training.data.interactions import Interactions
from training.models import REGISTRY
from training.models.base import Model, UnsuitableData

SHORT: dict[str, Any] = {
    "epochs": 1,
    "pretrain_epochs": 1,
    "gan_epochs": 1,
    "d_epochs": 1,
    "g_epochs": 1,
    "patience": None,
}


def _odd_data() -> dict[str, Interactions]:
    train = make_structured(0).train
    rng = np.random.default_rng(0)

    def rated(ratings: np.ndarray, explicit: bool = True) -> Interactions:
        return dataclasses.replace(train, ratings=ratings.astype(np.float32), explicit=explicit)

    return {
        "structured": train,
        "all ratings equal": rated(np.full(len(train), 4.0)),
        "implicit": rated(np.ones(len(train)), explicit=False),
        "one item": Interactions.from_arrays(
            [f"u{u}" for u in range(30)], ["i0"] * 30, rng.integers(1, 6, 30).astype(float)
        ),
        "continuous ratings": rated(rng.uniform(1, 5, len(train))),
    }


ODD = _odd_data()
#: What the fits refuse (pinned so a change in a model's needs is seen here too).
REFUSED = {
    "structured": set(),
    "all ratings equal": {"cf-nade", "i-cf-nade", "cf-rbm"},
    "implicit": {"cf-nade", "i-cf-nade", "cf-rbm"},
    "one item": {"bpr-mf", "irgan"},
    "continuous ratings": {"cf-nade", "i-cf-nade", "cf-rbm"},
}


def _model(name: str) -> Model:
    cls = REGISTRY[name]
    fields = cls.Config().to_dict()
    return cls(cls.Config().with_overrides({k: v for k, v in SHORT.items() if k in fields}))


def _verdict(call: Any) -> str | None:
    try:
        call()
    except UnsuitableData as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("shape", sorted(ODD))
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_check_data_refuses_what_fit_refuses(name: str, shape: str) -> None:
    data = ODD[shape]
    checked = _verdict(lambda: _model(name).check_data(data))
    fitted = _verdict(lambda: _model(name).fit(data))  # any other error fails the test
    assert checked == fitted  # the same refusal, with the same message
    assert (fitted is not None) == (name in REFUSED[shape]), fitted
