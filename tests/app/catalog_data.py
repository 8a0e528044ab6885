"""Synthetic ratings where an item's text decides who likes it (catalog and new-item tests).

Every item's plot is drawn from one of two topics' words (space vs. romance);
user ``u{n}`` loves topic ``n % 2`` (ratings 4-5) and dislikes the other
(1-2). ``held_out`` items are left out of the training data entirely — not
even in the id map — so only their text can place them, as for an item that
enters the catalog after training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.data.interactions import Interactions

TOPICS = (
    "space alien rocket planet galaxy orbit astronaut laser starship comet",
    "love romance wedding kiss heart bride marriage passion letter sweetheart",
)
FILLER = "story film people city night world house"
#: Tiny ConvMF: trains on ``text_ratings()`` in a few seconds on one CPU thread.
TINY_CONVMF: dict[str, object] = {
    "factors": 8,
    "lambda_u": 1.0,
    "lambda_v": 10.0,
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


def plot(topic: int, rng: np.random.Generator) -> str:
    """A document of 8 topic words and 4 neutral ones."""
    words = rng.choice(TOPICS[topic].split(), size=8).tolist()
    words += rng.choice(FILLER.split(), size=4).tolist()
    return " ".join(rng.permutation(words))


@dataclass(frozen=True)
class TextRatings:
    """Training data without the held-out items, and what is known about those items."""

    train: Interactions
    held_out: dict[str, tuple[int, str]]  # item id -> (topic, text)
    held_out_ratings: list[tuple[str, str, float]]  # (user id, item id, rating)


def text_ratings(
    seed: int = 0, n_users: int = 60, n_items: int = 40, held_out_per_topic: int = 3
) -> TextRatings:
    """Users rate 20 random items each; ``held_out_per_topic`` items per topic leave training."""
    rng = np.random.default_rng(seed)
    topic = np.arange(n_items) % 2
    texts = {f"i{j:02d}": plot(int(topic[j]), rng) for j in range(n_items)}
    cold = {
        f"i{j:02d}" for t in (0, 1) for j in np.where(topic == t)[0][-held_out_per_topic:].tolist()
    }
    rows, cold_rows = [], []
    for u in range(n_users):
        for j in rng.choice(n_items, size=20, replace=False).tolist():
            liked = topic[j] == u % 2
            rating = float(rng.integers(4, 6) if liked else rng.integers(1, 3))
            row = (f"u{u:02d}", f"i{j:02d}", rating)
            (cold_rows if row[1] in cold else rows).append(row)
    users, items, ratings = zip(*rows, strict=True)
    train = Interactions.from_arrays(
        list(users),
        list(items),
        np.asarray(ratings, dtype=np.float32),
        1_600_000_000 + np.arange(len(rows)),
        item_meta={i: {"title": f"title {i}", "text": texts[i]} for i in set(items)},
    )
    held_out = {i: (int(i[1:]) % 2, texts[i]) for i in sorted(cold)}
    return TextRatings(train, held_out, cold_rows)
