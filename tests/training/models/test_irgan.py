"""IRGAN: the players' updates match the authors' losses, the game runs, the artifact is whole."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from training.models import REGISTRY
from training.models.base import History, ModelError, Validation
from training.models.common.mf import ItemBiasMF
from training.models.irgan import (
    IRGAN,
    IRGANConfig,
    IRGANScorer,
    d_examples,
    d_step,
    g_user_step,
)
from training.models.popularity import Popularity

TINY = {
    "dim": 8,
    "pretrain_epochs": 15,
    "pretrain_lr": 0.05,
    "pretrain_reg": 1e-3,
    "pretrain_batch_size": 32,
    "gan_epochs": 2,
    "d_epochs": 3,
    "g_epochs": 2,
    "d_resample_every": 2,
    "g_lr": 0.05,
    "d_lr": 0.05,
    "positive_threshold": 3.5,
}


@pytest.fixture(scope="module")
def fitted(structured) -> tuple[IRGAN, list[dict[str, float]]]:
    model = IRGAN(IRGANConfig().with_overrides(TINY))
    report = model.fit(structured.train)
    return model, [e.losses for e in report.history]


def small_mf(seed: int, n_users: int = 3, n_items: int = 12, dim: int = 4) -> ItemBiasMF:
    torch.manual_seed(seed)
    mf = ItemBiasMF(n_users, n_items, dim).init_uniform(0.5)
    with torch.no_grad():
        mf.item_bias.normal_(0.0, 0.3)
    return mf


def test_registered_under_its_name() -> None:
    assert REGISTRY["irgan"] is IRGAN
    assert IRGAN.scorer_cls is IRGANScorer and IRGANScorer.name == "irgan"


def test_d_step_is_sgd_on_the_authors_summed_loss() -> None:
    """dis_model.pre_loss, a (N,) vector that TF minimises by its sum."""
    d, ref = small_mf(0), small_mf(0)
    users, items = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([1, 5, 1, 7, 7, 3])
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    lr, lam = 0.1, 0.3
    p, q, b = ref.user_factors[users], ref.item_factors[items], ref.item_bias[items]
    ce = torch.nn.functional.binary_cross_entropy_with_logits(
        (p * q).sum(1) + b, labels, reduction="none"
    )
    l2 = 0.5 * (p.pow(2).sum() + q.pow(2).sum() + b.pow(2).sum())  # tf.nn.l2_loss
    (ce + lam * l2).sum().backward()
    d_step(d, users, items, labels, lr, lam)
    for name, param in ref.named_parameters():
        torch.testing.assert_close(getattr(d, name), param.detach() - lr * param.grad)


def test_g_step_is_the_importance_sampled_policy_gradient() -> None:
    """gen_model.gan_loss with the reward cf_gan.py feeds it, recomputed by autograd."""
    cfg = IRGANConfig(g_lr=0.1, g_reg=0.2, sample_lambda=0.2, g_samples_per_positive=2)
    g, d = small_mf(1), small_mf(2)
    pos = torch.tensor([2, 5, 6])
    gen = torch.Generator().manual_seed(3)
    before = {k: v.detach().clone() for k, v in g.named_parameters()}
    g_user_step(g, d, 1, pos, cfg, gen)
    # Replay the same draw, then differentiate the authors' loss.
    ref = small_mf(1)
    with torch.no_grad():
        prob = torch.softmax(ref.all_logits(torch.tensor([1]))[0], 0)
        pn = (1 - cfg.sample_lambda) * prob
        pn[pos] += cfg.sample_lambda / len(pos)
        sample = torch.multinomial(pn, 6, True, generator=torch.Generator().manual_seed(3))
        reward = 2 * (torch.sigmoid(d.pair_logits(torch.full((6,), 1), sample)) - 0.5)
        reward = reward * prob[sample] / pn[sample]
    i_prob = torch.softmax(ref.all_logits(torch.tensor([1]))[0], 0)[sample]
    l2 = 0.5 * (
        ref.user_factors[1].pow(2).sum()
        + ref.item_factors[sample].pow(2).sum()
        + ref.item_bias[sample].pow(2).sum()
    )
    (-(torch.log(i_prob) * reward).mean() + cfg.g_reg * l2).backward()
    for name, param in ref.named_parameters():
        expected = before[name] - cfg.g_lr * param.grad
        torch.testing.assert_close(getattr(g, name), expected, rtol=1e-5, atol=1e-6)


def test_d_examples_interleave_positive_and_sampled() -> None:
    lines = (torch.tensor([4, 4]), torch.tensor([1, 2]), torch.tensor([9, 8]))
    users, items, labels = d_examples(lines)
    assert users.tolist() == [4, 4, 4, 4]
    assert items.tolist() == [1, 9, 2, 8]
    assert labels.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_losses_are_finite_and_pretraining_falls(fitted) -> None:
    _, losses = fitted
    pre = [e["pretrain_bpr"] for e in losses if "pretrain_bpr" in e]
    gan = [e for e in losses if "g_pg" in e]
    assert len(pre) == TINY["pretrain_epochs"]
    assert len(gan) == TINY["gan_epochs"] * TINY["g_epochs"]
    assert sum("d_ce" in e for e in gan) == TINY["gan_epochs"]  # D runs once per GAN epoch
    assert all(math.isfinite(v) for e in losses for v in e.values())
    assert pre[-1] < 0.5 * pre[0], pre


def test_discriminator_learns_to_separate(structured) -> None:
    """Each D phase lowers the cross-entropy below chance (ln 2) on its own data."""
    model = IRGAN(IRGANConfig().with_overrides({**TINY, "gan_epochs": 1, "d_epochs": 6}))
    report = model.fit(structured.train)
    d_ce = [e.losses["d_ce"] for e in report.history if "d_ce" in e.losses]
    assert d_ce and d_ce[0] < math.log(2) - 0.05, d_ce


def test_beats_popularity_on_structured_data(
    fitted, structured, hit_rate: Callable[..., float]
) -> None:
    popularity = Popularity()
    popularity.fit(structured.train)
    ours = hit_rate(fitted[0].to_scorer(), structured.train, structured.heldout, 5)
    baseline = hit_rate(popularity.to_scorer(), structured.train, structured.heldout, 5)
    assert ours > baseline + 0.05, (ours, baseline)


def test_artifact_holds_both_players(fitted) -> None:
    model, _ = fitted
    tensors = model.to_scorer().tensors()
    assert set(tensors) == {
        "user_factors",
        "item_factors",
        "item_bias",
        "d_user_factors",
        "d_item_factors",
        "d_item_bias",
    }
    assert model.d is not None
    torch.testing.assert_close(tensors["d_item_factors"], model.d.item_factors.detach())
    assert not torch.equal(tensors["d_item_factors"], tensors["item_factors"])


def test_serves_the_generator(fitted) -> None:
    model, _ = fitted
    scorer = model.to_scorer()
    users = torch.tensor([0, 3, 7])
    history = History.from_lists([[0], [1], [2]], None, 40)
    with torch.no_grad():
        served = scorer.score(scorer.user_state(users, history))
    torch.testing.assert_close(served, model.reference_scores(users, history))


def test_fold_in_for_an_unseen_user_changes_the_ranking(fitted) -> None:
    scorer = fitted[0].to_scorer()
    unknown = torch.tensor([-1])
    ranks = []
    for items in ([0, 1, 2], [25, 26, 27]):
        history = History.from_lists([items], [[5.0] * 3], 40)
        with torch.no_grad():
            ranks.append(scorer.score(scorer.user_state(unknown, history)).argsort(descending=True))
    assert not torch.equal(ranks[0], ranks[1])


def test_validation_keeps_the_pretrained_mf_when_the_game_does_not_help(structured) -> None:
    calls: list[int] = []

    def evaluate(scorer) -> dict[str, float]:  # pre-training epochs score 1.0, the game 0.0
        calls.append(1)
        return {"hit@5": 1.0 if len(calls) <= TINY["pretrain_epochs"] else 0.0}

    model = IRGAN(IRGANConfig().with_overrides({**TINY, "pretrain_patience": 100}))
    report = model.fit(structured.train, Validation(evaluate, "hit@5"))
    assert report.best_epoch == 1 and report.best_metrics == {"hit@5": 1.0}
    assert report.epochs_run == len(report.history) == len(calls)
    assert model.pretrain_report is not None and model.g is not None
    assert model.pretrain_report.best_epoch == 1
    # An all-data refit replays the pre-training's kept epoch and no game.
    assert model.replay_lengths(report.best_epoch) == {"pretrain_epochs": 1, "game_epochs": 0}


def test_replay_lengths_name_the_kept_epoch_of_each_phase(structured) -> None:
    """The game starts from the kept pre-trained players, so a refit without validation
    must stop the pre-training there and then play as many G epochs as validation kept."""
    calls: list[int] = []
    best_pretrain, best_game = 3, 2

    def evaluate(scorer) -> dict[str, float]:
        calls.append(1)
        if len(calls) == best_pretrain:
            return {"hit@5": 0.5}
        return {"hit@5": 0.9 if len(calls) == TINY["pretrain_epochs"] + best_game else 0.1}

    model = IRGAN(IRGANConfig().with_overrides({**TINY, "pretrain_patience": 100}))
    report = model.fit(structured.train, Validation(evaluate, "hit@5"))
    assert report.best_metrics == {"hit@5": 0.9}
    replay = model.replay_lengths(report.best_epoch)
    assert replay == {"pretrain_epochs": best_pretrain, "game_epochs": best_game}
    refit = IRGAN(IRGANConfig().with_overrides({**TINY, **replay}))
    again = refit.fit(structured.train)  # no validation: runs exactly the replayed lengths
    phases = [("d_ce" in e.losses or "g_pg" in e.losses) for e in again.history]
    assert phases == [False] * best_pretrain + [True] * best_game


def test_game_epochs_caps_the_game_in_g_epochs(structured) -> None:
    model = IRGAN(IRGANConfig().with_overrides({**TINY, "game_epochs": 3}))
    report = model.fit(structured.train)
    gan = [e.losses for e in report.history[TINY["pretrain_epochs"] :]]
    assert len(gan) == 3  # not gan_epochs x g_epochs = 4
    assert [("d_ce" in e) for e in gan] == [True, False, True]  # D opens each GAN epoch
    none = IRGAN(IRGANConfig().with_overrides({**TINY, "game_epochs": 0}))
    assert none.fit(structured.train).epochs_run == TINY["pretrain_epochs"]
    assert none.replay_lengths(0) == {"pretrain_epochs": TINY["pretrain_epochs"], "game_epochs": 0}


def test_pretrained_only_and_pretrained_discriminator(structured) -> None:
    only = IRGAN(IRGANConfig().with_overrides({**TINY, "gan_epochs": 0}))
    report = only.fit(structured.train)
    assert report.epochs_run == TINY["pretrain_epochs"]
    both = IRGAN(
        IRGANConfig().with_overrides({**TINY, "gan_epochs": 0, "pretrain_discriminator": True})
    )
    both.fit(structured.train)
    tensors = both.to_scorer().tensors()
    torch.testing.assert_close(tensors["d_item_factors"], tensors["item_factors"])


def test_bad_settings_are_refused_with_their_name() -> None:
    with pytest.raises(ModelError, match="sample_lambda"):
        IRGANConfig(sample_lambda=1.0)
    with pytest.raises(ModelError, match="g_epochs"):
        IRGANConfig(g_epochs=0)
    with pytest.raises(ModelError, match="game_epochs"):
        IRGANConfig(game_epochs=-1)
    with pytest.raises(ModelError, match="temperature"):
        IRGANConfig(temperature=0.0)
    with pytest.raises(ModelError, match="fit"):
        IRGAN().to_scorer()
