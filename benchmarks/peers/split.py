"""Write ONE shared split per protocol, with genrec's own splitters, for every library to read.

Each protocol's split is made exactly as genrec's protocol makes it
(``training/protocols/``) and written once as CSV over dense indices, so
genrec and every peer train on the same rows and are scored on the same rows:

* ``strong`` — Liang et al. 2018's strong generalization (clicks = rating > 3.5,
  users with >= 5 clicks; N validation + N test users folded in from 80% of
  their clicks, the other 20% to recover). Files: ``train``, ``valid_fold_in``,
  ``valid_heldout``, ``test_fold_in``, ``test_heldout``.
* ``weak`` — every record a click, random 60/20/20 record split, users known.
* ``ratings`` — random 90/10 rating split, 5% of the training part carved out
  for validation (the ``ratings-random`` protocol): ``train`` is the 85.5%
  every library fits on.
* ``text`` (opt-in) — ConvMF's rating protocol (``ratings-split``, Kim et al.
  2016): a covering random 80/10/10 split, plus ``documents.json`` with every
  item's document: the raw text (``texts``, what genrec's ConvMF reads and
  preprocesses itself) and the same text after genrec's Sec. 4.1
  preprocessing (``words``, vocabulary from the training items), which a peer
  reads so that both libraries see the very same words.

``meta.json`` holds the sizes, the seed, the evaluated users of each target
and the protocol's settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data.documents import build_vocabulary, encode, item_texts
from training.data.interactions import IdMap, Interactions
from training.data.splits import covering_random_split, random_split, strong_generalization
from training.protocols.common import sub_seed
from training.protocols.strong_generalization import clicks

PROTOCOLS = ("strong", "weak", "ratings", "text")


class SplitWriteError(ValueError):
    """The data cannot give the asked-for split; the message says why."""


@dataclass(frozen=True)
class SplitSettings:
    """The protocols' settings (genrec's protocol defaults)."""

    seed: int = 0
    heldout_users: int = 150
    click_threshold: float = 3.5
    min_clicks: int = 5
    test_fraction: float = 0.1
    valid_fraction: float = 0.05
    vocab_size: int = 8000  # text: ConvMF's Sec. 4.1 preprocessing (genrec's defaults)
    max_df: float = 0.5
    max_len: int = 300


def write_part(path: Path, data: Interactions) -> None:
    """``user,item,rating`` rows of dense indices (the peers' input format)."""
    table = np.column_stack([data.users, data.items, data.ratings.astype(np.float64)])
    np.savetxt(
        path, table, fmt=["%d", "%d", "%g"], delimiter=",", header="user,item,rating", comments=""
    )


def _users_with_records(data: Interactions) -> list[int]:
    return [int(u) for u in np.unique(data.users)]


def _write(directory: Path, protocol: str, parts: dict[str, Interactions], meta: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    first = next(iter(parts.values()))
    for name, part in parts.items():
        write_part(directory / f"{name}.csv", part)
    full_meta = {
        "protocol": protocol,
        "n_users": first.n_users,
        "n_items": first.n_items,
        **meta,
        "sizes": {name: len(part) for name, part in parts.items()},
    }
    (directory / "meta.json").write_text(json.dumps(full_meta, indent=1) + "\n")
    return directory


def write_strong(data: Interactions, directory: Path, s: SplitSettings) -> Path:
    kept = clicks(data, s.click_threshold, s.min_clicks)
    n_active = len(np.unique(kept.users))
    if n_active <= 2 * s.heldout_users:
        raise SplitWriteError(
            f"{n_active} users with >= {s.min_clicks} clicks cannot give 2 x {s.heldout_users} "
            "held-out users; lower --heldout-users"
        )
    split = strong_generalization(kept, s.heldout_users, s.heldout_users, 0.8, s.seed)
    parts = {
        "train": split.train,
        "valid_fold_in": split.valid_fold_in,
        "valid_heldout": split.valid_heldout,
        "test_fold_in": split.test_fold_in,
        "test_heldout": split.test_heldout,
    }
    meta = {
        "valid_users": _users_with_records(split.valid_heldout),
        "test_users": _users_with_records(split.test_heldout),
        "settings": {
            "click_threshold": s.click_threshold,
            "min_clicks": s.min_clicks,
            "heldout_users": s.heldout_users,
            "fold_in_fraction": 0.8,
            "seed": s.seed,
        },
    }
    return _write(directory, "strong", parts, meta)


def write_weak(data: Interactions, directory: Path, s: SplitSettings) -> Path:
    train, valid, test = random_split(data.binarize(None), (0.6, 0.2, 0.2), s.seed)
    meta = {
        "valid_users": _users_with_records(valid),
        "test_users": _users_with_records(test),
        "settings": {"ratios": [0.6, 0.2, 0.2], "seed": s.seed},
    }
    return _write(directory, "weak", {"train": train, "valid": valid, "test": test}, meta)


def write_ratings(data: Interactions, directory: Path, s: SplitSettings) -> Path:
    if not data.explicit:
        raise SplitWriteError("the ratings protocol needs explicit ratings; the data has none")
    train_all, test = random_split(data, (1 - s.test_fraction, s.test_fraction), s.seed)
    train, valid = random_split(
        train_all, (1 - s.valid_fraction, s.valid_fraction), sub_seed(s.seed, "valid")
    )
    low, high = data.rating_range
    meta = {
        "rating_range": [low, high],
        "default_rating": 3.0,
        "settings": {
            "test_fraction": s.test_fraction,
            "valid_fraction": s.valid_fraction,
            "seed": s.seed,
        },
    }
    return _write(directory, "ratings", {"train": train, "valid": valid, "test": test}, meta)


def write_text(data: Interactions, directory: Path, s: SplitSettings) -> Path:
    if not data.explicit:
        raise SplitWriteError("the text protocol needs explicit ratings; the data has none")
    from training.models.text_cnn import with_documents  # imports torch: only when asked

    data = with_documents(data, None)
    texts = item_texts(data)
    if not any(t is not None for t in texts):
        raise SplitWriteError(
            "the text protocol needs item documents: items with a 'text' in item_meta, or "
            "ml-1m-plots/movies_extrainfos.dat under GENREC_DATA_DIR to match by title"
        )
    train, valid, test = covering_random_split(data, (0.8, 0.1, 0.1), s.seed)
    rated = np.bincount(train.items, minlength=train.n_items) > 0
    vocab = build_vocabulary(
        [t for t, r in zip(texts, rated, strict=True) if t is not None and r],
        s.vocab_size,
        s.max_df,
    )
    sequences = encode([t or "" for t in texts], vocab, s.max_len)
    documents = {
        "texts": texts,
        "words": [" ".join(vocab[i - 1] for i in seq) for seq in sequences],
        "preprocessing": {"vocab_size": s.vocab_size, "max_df": s.max_df, "max_len": s.max_len},
    }
    low, high = data.rating_range
    meta = {
        "rating_range": [low, high],
        "default_rating": 3.0,
        "n_items_with_text": sum(bool(seq) for seq in sequences),
        "settings": {"ratios": [0.8, 0.1, 0.1], "covering": True, "seed": s.seed},
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "documents.json").write_text(json.dumps(documents) + "\n")
    return _write(directory, "text", {"train": train, "valid": valid, "test": test}, meta)


def read_texts(directory: Path) -> list[str | None]:
    """(I,) the raw document of each item of a ``text`` split (None: the item has none)."""
    return json.loads((directory / "documents.json").read_text())["texts"]


WRITERS = {
    "strong": write_strong,
    "weak": write_weak,
    "ratings": write_ratings,
    "text": write_text,
}


def write_splits(
    data: Interactions, root: Path, protocols: tuple[str, ...], settings: SplitSettings
) -> dict[str, Path]:
    """Write each protocol's split under ``root/<protocol>``; returns the directories."""
    unknown = [p for p in protocols if p not in WRITERS]
    if unknown:
        raise SplitWriteError(f"unknown protocol(s) {unknown}; known: {', '.join(PROTOCOLS)}")
    return {p: WRITERS[p](data, root / p, settings) for p in protocols}


def read_interactions(directory: Path, name: str, explicit: bool) -> Interactions:
    """A split CSV back as ``Interactions`` over the split's identity id maps.

    Index ``i`` maps to external id ``str(i)``, so a genrec model trained on it
    scores exactly the columns the peers' files use. A ``text`` split's items
    carry their documents as ``item_meta[id]["text"]``, where genrec's ConvMF
    reads them.
    """
    meta = json.loads((directory / "meta.json").read_text())
    table = np.loadtxt(directory / f"{name}.csv", delimiter=",", skiprows=1, ndmin=2)
    if table.size == 0:
        table = np.zeros((0, 3))
    n = len(table)
    return Interactions(
        users=table[:, 0].astype(np.int64),
        items=table[:, 1].astype(np.int64),
        ratings=table[:, 2].astype(np.float32),
        timestamps=np.zeros(n, dtype=np.int64),
        user_ids=IdMap(tuple(str(u) for u in range(int(meta["n_users"])))),
        item_ids=IdMap(tuple(str(i) for i in range(int(meta["n_items"])))),
        explicit=explicit,
        item_meta=_item_meta(directory) if meta["protocol"] == "text" else None,
    )


def _item_meta(directory: Path) -> dict[str, dict[str, str]]:
    return {str(i): {"text": t} for i, t in enumerate(read_texts(directory)) if t is not None}
