"""ConvMF and PMF: closed-form steps, text-driven taste, new items from text, fold-in, artifact.

The synthetic set makes item text decide taste: every item's plot is drawn
from one of two topics' words (space vs. romance), and each user loves one
topic (4-5) and dislikes the other (1-2). A few items per topic have no
training ratings at all, so only their text can place them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.data import documents as D
from training.data.errors import DataError
from training.data.interactions import Interactions
from training.models import REGISTRY
from training.models.base import History, ModelError, TextAwareScorer
from training.models.convmf import PMF, ConvMF, ConvMFConfig, PMFConfig
from training.models.convmf_scorer import ConvMFScorer, PMFScorer, fold_in, ridge_rows
from training.models.text_cnn import run_cnn

TOPICS = (
    "space alien rocket planet galaxy orbit astronaut laser starship comet",
    "love romance wedding kiss heart bride marriage passion letter sweetheart",
)
FILLER = "story film people city night world house"
N_USERS, N_ITEMS, COLD_PER_TOPIC = 60, 40, 3


def _plot(topic: int, rng: np.random.Generator) -> str:
    words = (
        rng.choice(TOPICS[topic].split(), size=8).tolist()
        + rng.choice(FILLER.split(), size=4).tolist()
    )
    return " ".join(rng.permutation(words))


def make_text_data(seed: int = 0) -> tuple[Interactions, Interactions, np.ndarray, np.ndarray]:
    """(train, test, item topics, cold item indices): users love one topic's items."""
    rng = np.random.default_rng(seed)
    topic = np.arange(N_ITEMS) % 2
    meta = {
        f"i{j:02d}": {"title": f"t{j}", "text": _plot(int(topic[j]), rng)} for j in range(N_ITEMS)
    }
    cold = np.concatenate([np.where(topic == t)[0][-COLD_PER_TOPIC:] for t in (0, 1)])
    rows = []
    for u in range(N_USERS):
        for j in rng.choice(N_ITEMS, size=20, replace=False):
            liked = topic[j] == u % 2
            rows.append((u, int(j), float(rng.integers(4, 6) if liked else rng.integers(1, 3))))
    users, items, ratings = (np.array(c) for c in zip(*rows, strict=True))
    data = Interactions.from_arrays(
        [f"u{u:02d}" for u in users], [f"i{j:02d}" for j in items], ratings, item_meta=meta
    )
    is_test = rng.random(len(data)) < 0.2
    is_test |= np.isin(data.items, cold)  # cold items: never in training
    return data.subset(~is_test), data.subset(is_test), topic, cold


TINY = {
    "factors": 8,
    "lambda_u": 1.0,
    "lambda_v": 10.0,
    "lambda_bias": 0.5,
    "epochs": 8,
    "patience": None,
    "emb_dim": 16,
    "filters": 8,
    "proj_dim": 16,
    "cnn_epochs": 5,
    "cnn_batch_size": 16,
    "cnn_lr": 3e-3,
    "dropout": 0.0,
}


@pytest.fixture(scope="module")
def text_data() -> tuple[Interactions, Interactions, np.ndarray, np.ndarray]:
    return make_text_data(0)


@pytest.fixture(scope="module")
def convmf(text_data) -> ConvMF:
    model = ConvMF(ConvMFConfig().with_overrides(TINY))
    model.fit(text_data[0])
    return model


def _predict(scorer: PMFScorer, train: Interactions, test: Interactions) -> np.ndarray:
    users = np.unique(test.users)
    with torch.no_grad():
        state = scorer.user_state(torch.as_tensor(users), History.from_csr(train.to_csr(), users))
        full = scorer.predict(state).numpy()
    return full[np.searchsorted(users, test.users), test.items]


def _rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


# --------------------------------------------------------------------------- closed form


def test_ridge_rows_is_eq_8_row_by_row() -> None:
    rng = np.random.default_rng(1)
    table = rng.normal(size=(5, 3)).astype(np.float32)
    rows, cols = np.array([0, 0, 0, 1]), np.array([1, 3, 4, 2])
    y = np.array([4.0, 2.0, 5.0, 3.0], dtype=np.float32)
    prior = rng.normal(size=(2, 3)).astype(np.float32)
    got = ridge_rows(
        torch.as_tensor(rows),
        torch.as_tensor(cols),
        torch.as_tensor(y),
        torch.as_tensor(table),
        2,
        0.5,
        torch.as_tensor(prior),
    ).numpy()
    for r in (0, 1):
        x = table[cols[rows == r]].astype(np.float64)
        want = np.linalg.solve(x.T @ x + 0.5 * np.eye(3), x.T @ y[rows == r] + 0.5 * prior[r])
        np.testing.assert_allclose(got[r], want, rtol=1e-5, atol=1e-6)


def test_biased_fold_in_is_the_ridge_solve_of_factors_and_bias(convmf) -> None:
    """[u, b_i] = (Z^T Z + Lam)^-1 Z^T (r - mu - b_j), Z rows [v_j, 1]; state [u, 1, b_i, a_i].

    Lam = diag(lambda_U, ..., lambda_U, lambda_bias); a_i = m_i - u . v_bar - b_bar
    with m_i = (sum r + mu) / (n + 1).
    """
    scorer = convmf.to_scorer()
    items, rated, ratings = scorer.t["items"].double(), [1, 4, 6, 9], [5.0, 4.0, 1.0, 2.0]
    history = History.from_lists([rated], [ratings], N_ITEMS)
    with torch.no_grad():
        state = scorer.user_state(torch.tensor([-1]), history)[0]
    z = torch.cat([items[rated, :8], torch.ones(4, 1, dtype=torch.float64)], dim=1)
    y = torch.tensor(ratings, dtype=torch.float64) - items[rated, 8]  # minus mu + b_j
    lam_b = scorer.config["lambda_bias"] or TINY["lambda_u"]
    lam = torch.diag(torch.tensor([TINY["lambda_u"]] * 8 + [lam_b], dtype=torch.float64))
    want = torch.linalg.solve(z.T @ z + lam, z.T @ y)
    torch.testing.assert_close(state[:8].double(), want[:8], rtol=1e-4, atol=1e-5)
    mu, text_mean = scorer.config["global_mean"], scorer.t["text_mean"].double()
    m = (sum(ratings) + mu) / 5
    a = m - float(want[:8] @ text_mean[:8]) - float(text_mean[8])
    torch.testing.assert_close(state[8:], torch.tensor([1.0, float(want[8]), a]))


def test_a_user_with_no_history_is_predicted_mu_plus_the_item_bias(convmf, text_data) -> None:
    """Rated items: mu + b_j; text-scored items: mu + (b~_j - b_bar)."""
    train, _, _, cold = text_data
    scorer = convmf.to_scorer()
    with torch.no_grad():
        state = scorer.user_state(torch.tensor([-1]), History.from_lists([[]], [[]], N_ITEMS))
        scores = scorer.score(state)[0]
    mu = float(train.ratings.mean())
    assert scorer.config["global_mean"] == pytest.approx(mu)
    b_bar = float(scorer.t["text_mean"][8])
    torch.testing.assert_close(state[0], torch.tensor([0.0] * 8 + [1.0, 0.0, mu - b_bar]))
    items, is_cold = scorer.t["items"], torch.as_tensor(np.isin(np.arange(N_ITEMS), cold))
    torch.testing.assert_close(scores[~is_cold], items[~is_cold, 8])
    torch.testing.assert_close(scores[is_cold], mu + items[is_cold, 8] - b_bar)


def test_fold_in_of_an_empty_history_is_zero() -> None:
    items = torch.randn(6, 4)
    history = History.from_lists([[], [1, 2]], [[], [5.0, 1.0]], 6)
    state = fold_in(history, items, 1.0)
    assert torch.equal(state[0], torch.zeros(4))
    assert not torch.equal(state[1], torch.zeros(4))


# --------------------------------------------------------------------------- accuracy


def _fallbacks(train: Interactions, test: Interactions) -> tuple[float, float]:
    """RMSE of the global training mean and of each user's training mean on ``test``."""
    counts = np.bincount(train.users, minlength=train.n_users)
    sums = np.bincount(train.users, weights=train.ratings, minlength=train.n_users)
    user_mean = sums / np.maximum(counts, 1)
    global_mean = np.full(len(test), train.ratings.mean())
    return _rmse(global_mean, test.ratings), _rmse(user_mean[test.users], test.ratings)


def test_convmf_beats_the_global_mean_on_rated_items(convmf, text_data) -> None:
    train, test, _, cold = text_data
    pred = _predict(convmf.to_scorer(), train, test)
    warm = ~np.isin(test.items, cold)
    global_rmse, _ = _fallbacks(train, test.subset(warm))
    assert _rmse(pred[warm], test.ratings[warm]) < 0.6 * global_rmse


@pytest.mark.parametrize(
    ("biases", "anchor"), [(True, "user_mean"), (True, "model"), (False, "user_mean")]
)
def test_cold_items_scored_from_text_beat_both_fallbacks(
    text_data, biases: bool, anchor: str
) -> None:
    """Items with no training rating, placed by their text alone, beat the mean fallbacks.

    Serving's path: the row comes from ``item_vectors_from_text`` (not from
    the trained table), for the biased default and for the paper's raw model.
    """
    train, test, _, cold = text_data
    settings = {**TINY, "biases": biases, "new_item_anchor": anchor}
    model = ConvMF(ConvMFConfig().with_overrides(settings))
    model.fit(train)
    scorer = model.to_scorer()
    texts = [str(train.item_meta[train.item_ids.external(int(j))]["text"]) for j in cold]
    rows = scorer.item_vectors_from_text(texts)  # (C, D)
    cold_test = test.subset(np.isin(test.items, cold))
    users = np.unique(cold_test.users)
    with torch.no_grad():
        state = scorer.user_state(torch.as_tensor(users), History.from_csr(train.to_csr(), users))
    table = (state @ rows.T).clamp(*scorer.rating_range).numpy()
    column = np.array([int(np.where(cold == j)[0][0]) for j in cold_test.items])
    pred = table[np.searchsorted(users, cold_test.users), column]
    global_rmse, user_rmse = _fallbacks(train, cold_test)
    text_rmse = _rmse(pred, cold_test.ratings)
    assert text_rmse < 0.8 * global_rmse and text_rmse < 0.8 * user_rmse


def test_pmf_cannot_place_items_without_ratings(text_data) -> None:
    """Without text, an unrated item is the typical item: every user's mean rating m_i."""
    train, _, _, cold = text_data
    model = PMF(PMFConfig().with_overrides({k: TINY[k] for k in ("factors", "lambda_u", "epochs")}))
    report = model.fit(train)
    assert report.epochs_run == TINY["epochs"]
    scorer = model.to_scorer()
    assert torch.equal(scorer.item_vectors()[torch.as_tensor(cold)], torch.zeros(len(cold), 8))
    assert not hasattr(scorer, "item_vectors_from_text")
    users = np.arange(5)
    with torch.no_grad():
        state = scorer.user_state(torch.as_tensor(users), History.from_csr(train.to_csr(), users))
        scores = scorer.score(state, torch.as_tensor(cold))  # (5, C)
    counts = np.bincount(train.users, minlength=train.n_users)[users]
    sums = np.bincount(train.users, weights=train.ratings, minlength=train.n_users)[users]
    m = torch.as_tensor((sums + train.ratings.mean()) / (counts + 1), dtype=torch.float32)
    torch.testing.assert_close(scores, m.unsqueeze(1).expand(5, len(cold)))


def test_a_new_items_vector_from_text_lands_near_its_topic(convmf, text_data) -> None:
    _, _, topic, cold = text_data
    scorer = convmf.to_scorer()
    rng = np.random.default_rng(7)
    rows = scorer.item_vectors_from_text([_plot(0, rng), _plot(1, rng)])  # (2, k + 3)
    assert rows.shape == (2, 11) and torch.equal(rows[:, -2:], torch.tensor([[0.0, 1.0]] * 2))
    new = rows[:, :8]  # the taste part v_j
    warm = torch.as_tensor(np.setdiff1d(np.arange(N_ITEMS), cold))
    table = scorer.item_vectors()[warm]
    centroids = torch.stack(
        [table[torch.as_tensor(topic[warm.numpy()] == t)].mean(0) for t in (0, 1)]
    )
    sim = torch.nn.functional.cosine_similarity(new.unsqueeze(1), centroids.unsqueeze(0), dim=2)
    assert sim[0, 0] > sim[0, 1] and sim[1, 1] > sim[1, 0]


def test_an_unrated_items_row_is_its_cnn_output(convmf, text_data) -> None:
    """eq. 9 with no ratings: v_j = cnn(W, X_j); serving's new-item path gives the same row."""
    train, _, _, cold = text_data
    scorer = convmf.to_scorer()
    texts = [str(train.item_meta[train.item_ids.external(int(j))]["text"]) for j in cold]
    torch.testing.assert_close(
        scorer.item_vectors_from_text(texts), scorer.t["items"][torch.as_tensor(cold)]
    )


def test_text_without_vocabulary_words_is_predicted_at_the_users_mean(convmf, text_data) -> None:
    """No known word: the typical rated item's text row, so the user's mean m_i."""
    train = text_data[0]
    scorer = convmf.to_scorer()
    rows = scorer.item_vectors_from_text(["the and of", "space rocket"])
    assert torch.equal(rows[0], torch.cat([scorer.t["text_mean"], torch.tensor([0.0, 1.0])]))
    assert not torch.equal(rows[1], rows[0])
    counts = np.bincount(train.users, minlength=train.n_users)[:3]
    sums = np.bincount(train.users, weights=train.ratings, minlength=train.n_users)[:3]
    m = (sums + train.ratings.mean()) / (counts + 1)
    state = scorer.t["user_factors"][:3]  # [u_i, 1, b_i, a_i]
    torch.testing.assert_close(state @ rows[0], torch.as_tensor(m, dtype=torch.float32))
    with pytest.raises(ModelError, match="list of strings"):
        convmf.to_scorer().item_vectors_from_text("space rocket")  # type: ignore[arg-type]


def test_a_documents_vector_does_not_depend_on_its_batch(convmf) -> None:
    """Max-pooling skips padding, so a short plot batched with a long one keeps its vector."""
    scorer = convmf.to_scorer()
    short, long = "space rocket", " ".join(["galaxy orbit wedding kiss"] * 20)
    alone = scorer.item_vectors_from_text([short])
    torch.testing.assert_close(scorer.item_vectors_from_text([short, long])[:1], alone)


def _cnn_of(scorer: ConvMFScorer, docs: list[str]) -> torch.Tensor:
    """(n, out) cnn(W, X_j) run directly on the artifact's CNN (every doc has known words)."""
    cnn = scorer.cnn()
    seqs = D.encode(docs, scorer.config["vocab"], int(scorer.config["max_len"]))
    assert all(seqs)
    tokens = torch.as_tensor(D.pad(seqs, max(cnn.windows)))
    with torch.no_grad():
        return run_cnn(cnn, tokens, torch.as_tensor([len(s) for s in seqs]))


def test_with_text_items_returns_a_grown_copy_and_leaves_the_scorer_alone(convmf) -> None:
    """The text-aware capability serving uses: copy on write, rows from cnn(W, X_j)."""
    scorer = convmf.to_scorer()
    assert isinstance(scorer, TextAwareScorer)
    assert not isinstance(PMFScorer(scorer.config, scorer.t), TextAwareScorer)
    n, table, tensors = scorer.n_items, scorer.t["items"].clone(), dict(scorer.t)
    docs = ["a space rocket and a galaxy", "a wedding kiss"]
    grown = scorer.with_text_items(docs, refresh={3: "love letter"})

    assert isinstance(grown, ConvMFScorer) and grown is not scorer
    assert grown.n_items == n + 2 and grown.t["items"].shape == (n + 2, table.shape[1])
    torch.testing.assert_close(grown.t["items"][n:], scorer.item_vectors_from_text(docs))
    torch.testing.assert_close(
        grown.t["items"][3], scorer.item_vectors_from_text(["love letter"])[0]
    )
    keep = [j for j in range(n) if j != 3]
    assert torch.equal(grown.t["items"][keep], table[keep])
    # The original is untouched: same tensors, same values, same size.
    assert scorer.n_items == n and all(scorer.t[k] is v for k, v in tensors.items())
    assert torch.equal(scorer.t["items"], table)
    assert grown.t["user_factors"] is scorer.t["user_factors"]  # unchanged tensors shared
    # The grown scorer scores every item, old and new.
    state = scorer.t["user_factors"][:2]
    assert grown.score(state).shape == (2, n + 2)

    with pytest.raises(ModelError, match=r"no item rows \[99\] to refresh"):
        scorer.with_text_items([], refresh={99: "space"})
    with pytest.raises(ModelError, match="list of strings"):
        scorer.with_text_items("space rocket")


def test_new_rows_score_as_eq_9_says(convmf, text_data) -> None:
    """A new item's score is u_i . v_j with v_j = cnn(W, X_j) (eq. 9 without ratings).

    Default (biased) layout, anchored at the user's mean: m_i + (b~_j - b_bar)
    + u_i . (v~_j - v_bar), with [v~_j, b~_j] = cnn(W, X_j) and [v_bar, b_bar] =
    ``text_mean``. The paper's layout (biases=False): exactly u_i . cnn(W, X_j).
    """
    train = text_data[0]
    docs = ["a space rocket and a galaxy", "a wedding kiss", "orbit love comet"]
    users = np.arange(4)
    history = History.from_csr(train.to_csr(), users)

    scorer = convmf.to_scorer()
    k, n = scorer.factors, scorer.n_items
    grown = scorer.with_text_items(docs)
    with torch.no_grad():
        state = grown.user_state(torch.as_tensor(users), history)  # [u_i, 1, b_i, a_i]
        got = grown.score(state)[:, n:]
    out, bar = _cnn_of(scorer, docs), scorer.t["text_mean"]
    counts = np.bincount(train.users, minlength=train.n_users)[users]
    sums = np.bincount(train.users, weights=train.ratings, minlength=train.n_users)[users]
    m = torch.as_tensor((sums + train.ratings.mean()) / (counts + 1), dtype=torch.float32)
    expected = (
        m.unsqueeze(1) + (out[:, k] - bar[k]).unsqueeze(0) + state[:, :k] @ (out[:, :k] - bar[:k]).T
    )
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)

    paper = ConvMF(ConvMFConfig().with_overrides({**TINY, "epochs": 2, "biases": False}))
    paper.fit(train)
    raw = paper.to_scorer()
    grown_raw = raw.with_text_items(docs)
    with torch.no_grad():
        u = grown_raw.user_state(torch.as_tensor(users), history)  # u_i
        got_raw = grown_raw.score(u)[:, raw.n_items :]
    torch.testing.assert_close(got_raw, u @ _cnn_of(raw, docs).T)


# --------------------------------------------------------------------------- fold-in


def test_fold_in_for_an_unseen_user_follows_their_taste(convmf, text_data) -> None:
    _, _, topic, cold = text_data
    scorer = convmf.to_scorer()
    space = [j for j in range(N_ITEMS) if topic[j] == 0 and j not in cold][:5]
    romance = [j for j in range(N_ITEMS) if topic[j] == 1 and j not in cold][:5]
    history = History.from_lists([space + romance, []], [[5.0] * 5 + [1.0] * 5, []], N_ITEMS)
    with torch.no_grad():
        state = scorer.user_state(torch.tensor([-1, -1]), history)
        scores = scorer.score(state)
    assert torch.equal(state[1, :8], torch.zeros(8))  # no history: the prior mean
    space_rest = torch.as_tensor([j for j in range(N_ITEMS) if topic[j] == 0 and j not in space])
    romance_rest = torch.as_tensor(
        [j for j in range(N_ITEMS) if topic[j] == 1 and j not in romance]
    )
    assert scores[0, space_rest].mean() > scores[0, romance_rest].mean() + 1.0


# --------------------------------------------------------------------------- artifact


def test_artifact_round_trip_keeps_the_text_path(convmf) -> None:
    scorer = convmf.to_scorer()
    config = json.loads(json.dumps(scorer.config))
    assert len(config["vocab"]) > 10 and "space" in config["vocab"]
    stored = {k: torch.from_numpy(v.numpy().copy()) for k, v in scorer.tensors().items()}
    assert {"items", "user_factors", "cnn_embedding_weight", "cnn_out_weight"} <= set(stored)
    loaded = ConvMFScorer.from_tensors(config, stored)
    docs = ["a space rocket and a galaxy", "a wedding kiss"]
    torch.testing.assert_close(
        loaded.item_vectors_from_text(docs), scorer.item_vectors_from_text(docs), rtol=0, atol=0
    )


def test_paper_mode_and_older_artifacts_keep_the_raw_layout(text_data) -> None:
    """biases=False is the paper's u.v; an artifact without the key reads the same way."""
    train = text_data[0]
    model = ConvMF(ConvMFConfig().with_overrides({**TINY, "epochs": 2, "biases": False}))
    model.fit(train)
    scorer = model.to_scorer()
    assert scorer.t["items"].shape == (N_ITEMS, 8) and scorer.config["global_mean"] == 0.0
    config = {k: v for k, v in scorer.config.items() if k not in ("biases", "global_mean")}
    older = ConvMFScorer.from_tensors(config, scorer.tensors())
    docs = ["a space rocket and a galaxy"]
    assert older.item_vectors_from_text(docs).shape == (1, 8)
    torch.testing.assert_close(
        older.item_vectors_from_text(docs), scorer.item_vectors_from_text(docs)
    )
    users = torch.arange(4)
    torch.testing.assert_close(
        older.score(older.user_state(users, History.from_csr(train.to_csr(), users.numpy()))),
        model.reference_scores(users, History.from_csr(train.to_csr(), users.numpy())),
    )


def test_registry_names() -> None:
    assert REGISTRY["convmf"] is ConvMF and REGISTRY["pmf"] is PMF
    assert ConvMF.scorer_cls.predicts_ratings and PMF.scorer_cls.name == "pmf"


# --------------------------------------------------------------------------- inputs


def test_without_any_document_convmf_trains_as_pmf(text_data) -> None:
    train = text_data[0]
    bare = Interactions(
        train.users, train.items, train.ratings, train.timestamps, train.user_ids, train.item_ids
    )
    model = ConvMF(ConvMFConfig().with_overrides({**TINY, "epochs": 3, "plots": None}))
    model.fit(bare)
    assert model.to_scorer().config["vocab"] == []


def test_bad_settings_say_what_is_wrong(text_data, tmp_path: Path) -> None:
    train = text_data[0]
    with pytest.raises(ModelError, match="lambda_u and lambda_v"):
        PMF(PMFConfig(lambda_u=0.0)).fit(train)
    with pytest.raises(ModelError, match="no ratings"):
        PMF().fit(train.subset(np.zeros(len(train), dtype=bool)))
    with pytest.raises(ModelError, match="factors must be >= 1"):
        PMF(PMFConfig(factors=0)).fit(train)
    with pytest.raises(ModelError, match="cnn_epochs must be >= 0"):
        ConvMF(ConvMFConfig(**{**_small(), "cnn_epochs": -1})).fit(train)
    with pytest.raises(ModelError, match="word_vectors file not found"):
        ConvMF(ConvMFConfig(word_vectors=str(tmp_path / "none.txt"), **_small())).fit(train)
    untitled = Interactions.from_arrays(["u"], ["i"], [4.0], item_meta={"i": {"title": "Heat"}})
    with pytest.raises(DataError, match="plot file not found"):
        ConvMF(ConvMFConfig(plots=str(tmp_path / "none.dat"))).fit(untitled)


def test_pretrained_word_vectors_initialise_the_embedding(text_data, tmp_path: Path) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text("space " + " ".join(["0.5"] * 16) + "\nunused " + " ".join(["1"] * 16) + "\n")
    model = ConvMF(
        ConvMFConfig(word_vectors=str(path), **{**_small(), "epochs": 1, "cnn_epochs": 0})
    )
    model.fit(text_data[0])
    assert model.cnn is not None and model.docs is not None
    row = model.docs.vocab.index("space") + 1
    torch.testing.assert_close(model.cnn.embedding.weight[row], torch.full((16,), 0.5))


def _small() -> dict[str, object]:
    return {k: v for k, v in TINY.items() if k not in ("patience",)}


def test_item_init_random_starts_v_away_from_the_untrained_cnn(text_data) -> None:
    """``text`` (the authors'): V starts at cnn(W, X_j); ``random`` (Cornac's): Xavier-uniform."""
    train, cpu = text_data[0], torch.device("cpu")
    start = {}
    for init in ("text", "random"):
        model = ConvMF(ConvMFConfig(**{**_small(), "item_init": init, "biases": False}))
        torch.manual_seed(0)  # the same untrained CNN for both
        model._prepare(train, np.random.default_rng(0), cpu)
        params = model._init_params(train, cpu)
        start[init] = (params.v, params.prior)
    v, prior = start["text"]
    has_doc = prior.abs().sum(1) > 0
    assert bool(has_doc.any())
    torch.testing.assert_close(v[has_doc], prior[has_doc])
    v, prior = start["random"]
    assert float(v.abs().max()) <= (6.0 / (train.n_items + v.shape[1])) ** 0.5
    assert not torch.allclose(v[has_doc], prior[has_doc])
    torch.testing.assert_close(prior, start["text"][1])  # the eq. 9 prior itself is unchanged
    with pytest.raises(ModelError, match="item_init must be one of"):
        ConvMF(ConvMFConfig(**{**_small(), "item_init": "zeros"})).fit(train)
