"""Mult-DAE: the L2 term as the authors' code applies it, and a quality floor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from training.models.mult_dae import MultDAE
from training.models.popularity import Popularity

SMALL = {"hidden_dim": 16, "epochs": 60, "batch_size": 32, "lr": 0.01, "click_threshold": 3.5}


def test_default_l2_is_the_authors_value() -> None:
    assert MultDAE.Config().lam == pytest.approx(0.01 / 500)
    assert MultDAE.Config().hidden_dim == 200


def test_weight_penalty_covers_weights_not_biases(structured: Any) -> None:
    model = MultDAE(MultDAE.Config().with_overrides({**SMALL, "epochs": 1, "lam": 0.5}))
    model.fit(structured.train)
    net = model.net
    assert net is not None
    by_hand = 0.5 * (net.enc_in.weight.pow(2).sum() + net.dec_out.weight.pow(2).sum())
    torch.testing.assert_close(model.weight_penalty(), by_hand)


def test_beats_popularity(structured: Any, hit_rate: Callable[..., float]) -> None:
    dae = MultDAE(MultDAE.Config().with_overrides(SMALL))
    dae.fit(structured.train)
    popularity = Popularity()
    popularity.fit(structured.train)
    train, heldout = structured.train, structured.heldout
    assert hit_rate(dae.to_scorer(), train, heldout, 5) > hit_rate(
        popularity.to_scorer(), train, heldout, 5
    )
