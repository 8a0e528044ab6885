"""Two facts behind the ConvMF comparison in docs/peers.md, read from a written ``text`` split.

    GENREC_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.peers.text_stats \
        /tmp/peers_text_s0/ml-100k/splits/text

* How long the documents are after genrec's Sec. 4.1 preprocessing (the words
  Cornac gets), and so how much of a batch padded to ``max_len`` is padding:
  that is why Cornac's CNN pass costs what it does.
* How alike the rows are that genrec's ConvMF starts V at with
  ``item_init=text``: cnn(W, X_j) of the untrained CNN, built as
  ``ConvMF.fit`` builds it (seed 0, the paper's CNN, k = 50 without biases). A
  mean row almost as long as the rows means they share one direction.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.peers.split import read_interactions
from training.models.base import seed_everything
from training.models.convmf import ConvMFConfig
from training.models.text_cnn import TextCNN, prepare_documents, run_cnn


def document_lengths(split: Path, max_len: int) -> dict[str, float]:
    """Words per document (items with one) and the padding share at ``max_len`` words."""
    words = json.loads((split / "documents.json").read_text())["words"]
    lengths = np.array([len(w.split()) for w in words if w])
    return {
        "documents": len(lengths),
        "mean": float(lengths.mean()),
        "median": float(np.median(lengths)),
        "longest": int(lengths.max()),
        "padding_share": float(1.0 - lengths.sum() / (len(words) * max_len)),
    }


def untrained_rows(split: Path, seed: int = 0) -> dict[str, float]:
    """Mean norm of the untrained CNN's rows, and the norm of their mean row."""
    cfg = ConvMFConfig().with_overrides({"biases": "false"})
    train = read_interactions(split, "train", explicit=True)
    seed_everything(seed)  # as ConvMF.fit does, before it builds the CNN
    docs = prepare_documents(
        train, None, cfg.vocab_size, cfg.max_df, cfg.max_len, max(cfg.windows), torch.device("cpu")
    )
    cnn = TextCNN(
        len(docs.vocab), cfg.emb_dim, cfg.windows, cfg.filters, cfg.proj_dim, cfg.factors,
        cfg.dropout,
    )  # fmt: skip
    rows = run_cnn(cnn, docs.tokens, docs.lengths)
    return {
        "rows": len(rows),
        "mean_row_norm": float(rows.norm(dim=1).mean()),
        "norm_of_mean_row": float(rows.mean(0).norm()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("split", type=Path, help="a text split written by benchmarks.peers.run")
    parser.add_argument("--max-len", type=int, default=300)
    args = parser.parse_args(argv)
    if not (args.split / "documents.json").exists():
        raise SystemExit(f"{args.split} is not a text split (no documents.json)")
    torch.set_num_threads(1)
    print(json.dumps({"documents": document_lengths(args.split, args.max_len)}))
    print(json.dumps({"untrained_cnn": untrained_rows(args.split)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
