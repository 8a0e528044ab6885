"""Mult-VAE: the pieces of the objective (eq. 2, eq. 6 with annealed beta) and a quality floor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from training.models.base import History, ModelError, Validation
from training.models.mult_vae import MultVAE
from training.models.popularity import Popularity

SMALL = {
    "hidden_dim": 32,
    "latent_dim": 16,
    "epochs": 60,
    "batch_size": 32,
    "lr": 0.01,
    "total_anneal_steps": 100,
    "click_threshold": 3.5,
}


def test_beta_rises_linearly_to_the_cap() -> None:
    model = MultVAE(MultVAE.Config(total_anneal_steps=100, anneal_cap=0.2))
    seen = []
    for updates in (0, 10, 20, 50, 1000):
        model.update_count = updates
        seen.append(model.beta())
    assert seen == pytest.approx([0.0, 0.1, 0.2, 0.2, 0.2])


def test_rejects_bad_dropout(structured: Any) -> None:
    with pytest.raises(ModelError, match="dropout"):
        MultVAE(MultVAE.Config(dropout=1.0)).fit(structured.train)


def test_restores_the_best_validation_epoch(
    structured: Any, hit_rate: Callable[..., float]
) -> None:
    calls: list[float] = []

    def evaluate(scorer: Any) -> dict[str, float]:
        calls.append(hit_rate(scorer, structured.train, structured.heldout, 5))
        return {"hit@5": calls[-1]}

    model = MultVAE(MultVAE.Config().with_overrides({**SMALL, "epochs": 15}))
    report = model.fit(structured.train, Validation(evaluate, "hit@5"))
    assert report.best_metrics["hit@5"] == max(calls)
    kept = hit_rate(model.to_scorer(), structured.train, structured.heldout, 5)
    assert kept == pytest.approx(max(calls))
    assert model.update_count == report.best_epoch * 2  # 60 users / 32 per batch = 2 updates


@pytest.mark.parametrize("bf16", [False, True])
def test_beats_popularity(structured: Any, hit_rate: Callable[..., float], bf16: bool) -> None:
    vae = MultVAE(MultVAE.Config().with_overrides({**SMALL, "bf16": str(bf16).lower()}))
    vae.fit(structured.train)
    popularity = Popularity()
    popularity.fit(structured.train)
    train, heldout = structured.train, structured.heldout
    assert hit_rate(vae.to_scorer(), train, heldout, 5) > hit_rate(
        popularity.to_scorer(), train, heldout, 5
    )


@pytest.mark.parametrize("bf16", [False, True])
def test_bf16_runs_every_dense_layer_in_bfloat16_and_the_loss_in_float32(
    structured: Any, bf16: bool
) -> None:
    model = MultVAE(MultVAE.Config().with_overrides({**SMALL, "epochs": 1, "bf16": str(bf16)}))
    model.fit(structured.train)
    net = model.net
    assert net is not None
    seen: dict[str, torch.dtype] = {}
    for name in ("enc_out", "dec_hidden", "dec_out"):
        layer = getattr(net, name)
        layer.register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, out.dtype)
        )
    net.train()
    rows = [[0, 1, 2], [3, 4]]
    loss, _ = model.batch_loss(History.from_lists(rows, None, structured.train.n_items))
    expected = torch.bfloat16 if bf16 else torch.float32
    assert seen == {"enc_out": expected, "dec_hidden": expected, "dec_out": expected}
    assert loss.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_epsilon_std_scales_the_reparameterisation_noise(structured: Any) -> None:
    overrides = {**SMALL, "epochs": 1, "dropout": 0.0}
    rows = History.from_lists([[0, 1, 2], [3, 4]], None, structured.train.n_items)

    def two_losses(epsilon_std: float) -> tuple[float, float]:
        model = MultVAE(MultVAE.Config().with_overrides({**overrides, "epsilon_std": epsilon_std}))
        model.fit(structured.train)
        assert model.net is not None
        model.net.train()
        return model.batch_loss(rows)[0].item(), model.batch_loss(rows)[0].item()

    first, second = two_losses(0.0)  # no noise, no dropout: the step is deterministic
    assert first == second
    noisy = two_losses(1.0)  # the paper's eps ~ N(0, I)
    assert noisy[0] != noisy[1]
    with pytest.raises(ModelError, match="epsilon_std"):
        MultVAE(MultVAE.Config().with_overrides({**overrides, "epsilon_std": -1})).fit(
            structured.train
        )


def test_threshold_is_ignored_on_implicit_data(structured: Any) -> None:
    implicit = structured.train.binarize(None)
    model = MultVAE(MultVAE.Config().with_overrides({**SMALL, "epochs": 2}))
    model.fit(implicit)  # a 3.5 threshold on all-1.0 ratings would leave no clicks
    assert model.to_scorer().config["click_threshold"] is None
