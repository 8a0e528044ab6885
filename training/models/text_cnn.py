"""ConvMF's document CNN: Kim, Park, Oh, Lee & Yu, RecSys 2016, Sec. 3.2 (Fig. 2).

    embedding (random or pre-trained)          X_j -> D (emb x L)
    1-d convolutions, windows 3/4/5, ReLU       c^i = f(W_c^i * D + b_c^i)            (eq. 5)
    max-pooling over time                       d_f = [max(c^1), ..., max(c^nc)]     (eq. 6)
    projection                                  s = tanh(W_f2 {tanh(W_f1 d_f + b_f1)} + b_f2)  (eq. 10)

and its training step: ``cnn_epochs`` RMSprop passes fitting cnn(W, X_j) to
the current item vectors v_j on lambda_V/2 sum_j ||v_j - cnn(W, X_j)||^2
(eq. 11), as the authors' code does once per outer iteration.

Also the CNN's input: the items' documents (``item_meta`` text, or IMDB plots
matched by title + year) preprocessed as Sec. 4.1 into right-padded index
sequences (0 = padding, word i -> i + 1, ``training.data.documents``). Split
out of ``convmf.py`` so the model file holds the factorisation and the
serving card.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from training.data import documents as D
from training.data.interactions import Interactions
from training.models.base import ModelError

log = logging.getLogger(__name__)


class TextCNN(nn.Module):
    """Sec. 3.2: embedding -> conv(3/4/5) + ReLU -> max over time -> tanh MLP -> (N, out_dim)."""

    def __init__(
        self,
        n_words: int,
        emb_dim: int,
        windows: tuple[int, ...],
        filters: int,
        proj_dim: int,
        out_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.windows = tuple(windows)
        self.embedding = nn.Embedding(n_words + 1, emb_dim, padding_idx=0)  # 0 pads
        self.convs = nn.ModuleList(nn.Conv1d(emb_dim, filters, w) for w in self.windows)
        self.hidden = nn.Linear(filters * len(self.windows), proj_dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(proj_dim, out_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        """(N, L) word indices (L >= max window) -> (N, out_dim) document latent vectors."""
        e = self.embedding(tokens).transpose(1, 2)  # (N, emb, L)
        lengths = (tokens != 0).sum(1, keepdim=True)  # right-padded, words are >= 1
        pooled = []
        for w, conv in zip(self.windows, self.convs, strict=True):
            c = torch.relu(conv(e))  # (N, F, L - w + 1), eq. 5
            # Max over the windows that start inside the document (eq. 6): padding
            # never wins, so a document's vector does not depend on its batch's width.
            starts = torch.arange(c.shape[2], device=c.device).unsqueeze(0)
            inside = starts < (lengths - w + 1).clamp(min=1)  # (N, L - w + 1)
            pooled.append(c.masked_fill(~inside.unsqueeze(1), 0.0).amax(dim=2))
        h = torch.tanh(self.hidden(torch.cat(pooled, dim=1)))  # eq. 10, first layer
        return torch.tanh(self.out(self.drop(h)))  # eq. 10, output s_j

    @classmethod
    def from_config(cls, config: dict[str, Any], n_words: int, out_dim: int) -> TextCNN:
        """The CNN an artifact's scorer config describes (``out_dim`` = rows it predicts)."""
        return cls(
            n_words,
            int(config["emb_dim"]),
            tuple(int(w) for w in config["windows"]),
            int(config["filters"]),
            int(config["proj_dim"]),
            out_dim,
            float(config["dropout"]),
        )


def run_cnn(cnn: TextCNN, tokens: Tensor, lengths: Tensor, batch_size: int = 256) -> Tensor:
    """(N, out_dim) eval-mode CNN outputs; documents batched by length to skip padding."""
    was_training = cnn.training
    cnn.eval()
    out = torch.zeros(len(tokens), cnn.out.out_features, device=tokens.device)
    with torch.no_grad():
        for b in length_batches(lengths, torch.arange(len(lengths)), batch_size):
            b = b.to(tokens.device)
            out[b] = cnn(trim(tokens[b], lengths[b], cnn))
    cnn.train(was_training)
    return out


def fit_passes(
    cnn: TextCNN,
    optimizer: torch.optim.Optimizer,
    tokens: Tensor,
    lengths: Tensor,
    targets: Tensor,
    passes: int,
    batch_size: int,
    rng: np.random.Generator,
) -> float:
    """eq. 11: ``passes`` shuffled passes fitting cnn(tokens) to ``targets`` (N, out_dim).

    Returns the mean squared distance ||v_j - cnn(W, X_j)||^2 over the
    documents seen (0 when ``passes`` is 0). Batches group similar lengths so
    little time goes to padding; both the documents and the batch order are
    shuffled each pass.
    """
    cnn.train()
    total, count = 0.0, 0
    for _ in range(passes):
        shuffled = torch.as_tensor(rng.permutation(len(tokens)))
        batches = length_batches(lengths, shuffled, batch_size)
        for pick in rng.permutation(len(batches)):
            b = batches[pick].to(tokens.device)
            out = cnn(trim(tokens[b], lengths[b], cnn))
            loss = ((targets[b] - out) ** 2).sum(1).mean()  # eq. 11 / (lambda_V/2 * N)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(b)
            count += len(b)
    cnn.eval()
    return total / max(count, 1)


def length_batches(lengths: Tensor, order: Tensor, batch_size: int) -> list[Tensor]:
    """Batches of ``order`` (positions) with similar document lengths, in ``order``'s tie order.

    A stable sort by length keeps the caller's (shuffled) order among equal
    lengths; cutting each batch to its longest document then costs little
    padding (plots run from a few words to 300).
    """
    order = order.cpu()
    by_length = order[torch.argsort(lengths.cpu()[order], stable=True)]
    return list(torch.split(by_length, batch_size))


def trim(tokens: Tensor, lengths: Tensor, cnn: TextCNN) -> Tensor:
    """Drop padding columns beyond the batch's longest document (keeps >= max window)."""
    width = max(int(lengths.max()) if len(lengths) else 0, max(cnn.windows))
    return tokens[:, :width]


def load_word_vectors(path: str | Path, vocab: tuple[str, ...], dim: int) -> tuple[Tensor, int]:
    """(|vocab|, dim) rows from a GloVe-style text file for the words it has; count found."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"convmf: word_vectors file not found: {path}")
    index = {w: i for i, w in enumerate(vocab)}
    table = torch.zeros(len(vocab), dim)
    found = torch.zeros(len(vocab), dtype=torch.bool)
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            parts = line.rstrip().split(" ")
            if parts[0] not in index:
                continue
            if len(parts) != dim + 1:
                raise ModelError(
                    f"convmf: {path}, line {line_no}: {len(parts) - 1} values, emb_dim is {dim}"
                )
            table[index[parts[0]]] = torch.tensor([float(v) for v in parts[1:]])
            found[index[parts[0]]] = True
    return table, int(found.sum())


# --------------------------------------------------------------------------- documents


@dataclass
class Documents:
    """The items' documents as padded index sequences: the CNN's input."""

    vocab: tuple[str, ...]
    items: Tensor  # (N,) item indices that have a (non-empty) document
    tokens: Tensor  # (N, L) word indices, 0-padded
    lengths: Tensor  # (N,)
    trainable: Tensor  # (N,) bool: the item has training ratings (the CNN learns from it)


def prepare_documents(
    train: Interactions,
    plots: str | None,
    vocab_size: int,
    max_df: float,
    max_len: int,
    min_len: int,
    device: torch.device,
) -> Documents:
    """Sec. 4.1 preprocessing of the items' documents; vocabulary from rated items only."""
    texts = D.item_texts(with_documents(train, plots))
    rated = np.bincount(train.items, minlength=train.n_items) > 0
    vocab = D.build_vocabulary(
        [t for t, r in zip(texts, rated, strict=True) if t is not None and r], vocab_size, max_df
    )
    seqs = D.encode([t or "" for t in texts], vocab, max_len)
    with_doc = [j for j, s in enumerate(seqs) if s]  # empty after preprocessing = none
    log.info("convmf: %d of %d items have a document", len(with_doc), train.n_items)
    return Documents(
        vocab=vocab,
        items=torch.as_tensor(with_doc, dtype=torch.int64, device=device),
        tokens=torch.as_tensor(D.pad([seqs[j] for j in with_doc], min_len), device=device),
        lengths=torch.as_tensor([len(seqs[j]) for j in with_doc], device=device),
        trainable=torch.as_tensor(rated[with_doc], dtype=torch.bool, device=device),
    )


def default_plots_path() -> Path | None:
    """``$GENREC_DATA_DIR/ml-1m-plots/movies_extrainfos.dat`` when it exists."""
    root = os.environ.get("GENREC_DATA_DIR")
    if not root:
        return None
    path = Path(root).expanduser() / "ml-1m-plots" / "movies_extrainfos.dat"
    return path if path.is_file() else None


def with_documents(train: Interactions, plots: str | None) -> Interactions:
    """``train`` itself when any item has text; else with plots matched by title + year.

    No titles (no ``item_meta``) or no plot file: returned as is, and every
    item is trained as in PMF.
    """
    if any(t is not None for t in D.item_texts(train)):
        return train
    path = Path(plots) if plots else default_plots_path()
    if path is None or not train.item_meta:
        return train
    attached, report = D.attach_plots(train, path)
    log.info(
        "convmf: matched plots for %d/%d items (%.1f%% of ratings)",
        report.n_matched,
        report.n_items,
        100 * report.rating_rate,
    )
    return attached
