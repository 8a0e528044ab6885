"""Cornac (Salah, Truong & Lauw, JMLR 2020; ``cornac`` 3.0.1) on the shared split.

Models: VAECF (strong generalization; Cornac's Mult-VAE), MF (ratings; biased MF by
SGD, Cython), BPR (weak generalization; Cython), ConvMF (the ``text`` protocol;
TensorFlow 1-style graph code, so it runs in its own venv, ``.venv-peers-tf``).

* VAECF trains in Cornac's own ``learn`` loop. Its epoch loop iterates over
  ``trange``; the adapter swaps that one name for a range that stops the clock
  after each epoch, ranks the validation and test users (fold-in: the VAE's
  ``encode`` -> ``decode`` at the mean, as Cornac's ``score`` does for its
  training users), and restarts the clock. Cornac's code runs unchanged.
* ConvMF's outer loop is a plain ``range``, but each outer epoch calls
  ``trange(cnn_epochs)`` once, right after its closed-form U and V updates
  (eq. 8, 9) and before its CNN passes. The adapter swaps that name too: at
  each call it stops the clock, books one epoch, predicts the validation and
  test ratings from the U, V just computed (Cornac's ``score`` is u . v), and
  restarts the clock. An epoch as booked is therefore [CNN passes + document
  re-projection of epoch e - 1] + [U, V updates of epoch e]; the last epoch's
  CNN passes, which no prediction uses, are booked after ``fit`` returns.
* MF and BPR have no per-epoch hook (their loops are compiled), so each epoch
  budget is a fresh fit with ``max_iter`` = that budget; a checkpoint's time is
  that one fit's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from benchmarks.peers.adapters.common import (
    Recorder,
    Split,
    adapter_args,
    read_split,
    set_threads,
    should_checkpoint,
    topk_excluding,
)

MODELS = {"mult-vae": "VAECF", "biased-mf": "MF", "bpr-mf": "BPR", "convmf": "ConvMF"}


def settings(
    model: str, epochs: int, seed: int, threads: int, shared: dict[str, str] | None = None
) -> dict[str, Any]:
    """Matched to genrec's defaults where Cornac exposes the knob; Cornac's defaults elsewhere.

    ``shared`` are the run's shared ConvMF settings in genrec's names (``--set``).
    """
    if model == "convmf":
        shared = shared or {}
        return {
            "k": int(shared.get("factors", 50)),
            "n_epochs": epochs,
            "cnn_epochs": int(shared.get("cnn_epochs", 5)),
            "cnn_bs": 128,
            "cnn_lr": 1e-3,
            "lambda_u": float(shared.get("lambda_u", 100.0)),
            "lambda_v": float(shared.get("lambda_v", 10.0)),
            "emb_dim": 200,
            "max_len": int(shared.get("max_len", 300)),
            "filter_sizes": [3, 4, 5],
            "num_filters": 100,
            "hidden_dim": 200,
            "dropout_rate": 0.2,
            # The paper's eq. 7 has one lambda_V for every item, as genrec's ConvMF;
            # Cornac's default scales it per item by sqrt(#ratings).
            "give_item_weight": False,
            "seed": seed,
        }
    if model == "mult-vae":
        # Cornac's VAECF has no input dropout/normalisation and a fixed beta (no annealing).
        return {
            "k": 200,
            "autoencoder_structure": [600],
            "act_fn": "tanh",
            "likelihood": "mult",
            "n_epochs": epochs,
            "batch_size": 500,
            "learning_rate": 1e-3,
            "beta": 0.2,
            "seed": seed,
        }
    if model == "biased-mf":
        return {
            "k": 64,
            "max_iter": epochs,
            "learning_rate": 0.01,
            "lambda_reg": 0.02,
            "use_bias": True,
            "num_threads": threads,
            "seed": seed,
        }
    return {
        "k": 64,
        "max_iter": epochs,
        "learning_rate": 0.01,
        "lambda_reg": 0.01,
        "num_threads": threads,
        "seed": seed,
    }


def train_set(split: Split, explicit: bool) -> Any:
    """Cornac's Dataset over our dense ids (as strings), from the training CSV."""
    from cornac.data import Dataset

    part = split.parts["train"]
    ratings = part.ratings if explicit else np.ones(len(part))
    triples = [
        (str(u), str(i), float(r)) for u, i, r in zip(part.users, part.items, ratings, strict=True)
    ]
    return Dataset.build(triples, fmt="UIR", seed=0, exclude_unknowns=False)


def index_maps(data: Any, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """(n_users,), (n_items,): Cornac's internal index of each of our ids (-1: unknown to it)."""
    users = np.full(split.n_users, -1, dtype=np.int64)
    items = np.full(split.n_items, -1, dtype=np.int64)
    for raw, idx in data.uid_map.items():
        users[int(raw)] = idx
    for raw, idx in data.iid_map.items():
        items[int(raw)] = idx
    return users, items


def in_our_order(cornac_scores: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(B, I_cornac) -> (B, I) in our item order; items Cornac never saw score -inf."""
    out = np.full((cornac_scores.shape[0], len(items)), -np.inf)
    known = items >= 0
    out[:, known] = cornac_scores[:, items[known]]
    return out


# --------------------------------------------------------------------------- VAECF


class EpochHook:
    """Stands in for ``tqdm.trange`` in Cornac's VAE ``learn``: clock per epoch, evaluate between."""

    def __init__(self, recorder: Recorder, every: int, on_checkpoint: Callable[[], None]) -> None:
        self.recorder, self.every, self.on_checkpoint = recorder, every, on_checkpoint

    def __call__(self, start: int, stop: int, **_: Any) -> EpochHook:
        self.start, self.stop = start, stop
        return self

    def __iter__(self) -> Iterator[int]:
        for epoch in range(self.start, self.stop):
            t0, c0 = time.perf_counter(), time.process_time()
            yield epoch
            self.recorder.add(time.perf_counter() - t0, time.process_time() - c0, 1)
            if should_checkpoint(epoch, self.stop - 1, self.every):
                self.on_checkpoint()

    def set_postfix(self, **_: Any) -> None:
        """Cornac reports its running loss here; nothing to show."""


def vaecf_lists(model: Any, split: Split, items: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    lists = {}
    for which in ("valid", "test"):
        history = split.eval_history(which).tocoo()
        x = torch.zeros(history.shape[0], int(items.max()) + 1)
        x[history.row, items[history.col]] = 1.0
        with torch.no_grad():
            mu, _ = model.vae.encode(x)
            scores = model.vae.decode(mu).numpy()
        lists[f"{which}_topk"] = topk_excluding(
            in_our_order(scores, items), split.eval_exclude(which)
        )
    return lists


def run_vaecf(split: Split, params: dict[str, Any], recorder: Recorder, every: int) -> None:
    import cornac.models.vaecf.vaecf as vaecf_module
    from cornac.models import VAECF

    data = train_set(split, explicit=False)
    _, items = index_maps(data, split)
    model = VAECF(**params)
    hook = EpochHook(
        recorder, every, lambda: recorder.checkpoint(**vaecf_lists(model, split, items))
    )
    vaecf_module.trange = hook  # Cornac's learn() looks this name up at call time
    model.fit(data)


# --------------------------------------------------------------------------- ConvMF


class ConvMFHook:
    """Stands in for ``trange`` in Cornac's ConvMF: one call per outer epoch, after U and V."""

    def __init__(self, recorder: Recorder, on_checkpoint: Callable[[], None]) -> None:
        self.recorder, self.on_checkpoint = recorder, on_checkpoint
        self.restart()

    def restart(self) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def book(self, epochs: int) -> None:
        self.recorder.add(time.perf_counter() - self.t0, time.process_time() - self.c0, epochs)

    def __call__(self, n: int, **_: Any) -> range:
        self.book(1)
        # Progress: an epoch of Cornac's ConvMF takes minutes on one thread.
        print(
            f"cornac convmf: epoch {self.recorder.epochs_trained} done, "
            f"{self.recorder.train_cpu_seconds:.1f} CPU s of training so far",
            file=sys.stderr,
            flush=True,
        )
        self.on_checkpoint()
        self.restart()
        return range(n)


def convmf_predictions(model: Any, split: Split, users: np.ndarray, items: np.ndarray) -> dict:
    """Predicted rating u . v per validation/test row (the text split covers every user/item)."""
    out = {}
    for which in ("valid", "test"):
        part = split.parts[which]
        u, i = users[part.users], items[part.items]
        pred = np.full(len(part), 3.0)  # never used: score.py predicts unknown pairs as 3
        ok = (u >= 0) & (i >= 0)
        pred[ok] = np.einsum("nk,nk->n", model.U[u[ok]], model.V[i[ok]])
        out[f"{which}_pred"] = pred
    return out


def one_thread_sessions(threads: int) -> None:
    """Cornac opens its TF1 session with a default ConfigProto (all cores); cap its pools."""
    import tensorflow.compat.v1 as tf

    make = tf.ConfigProto

    def capped(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("intra_op_parallelism_threads", threads)
        kwargs.setdefault("inter_op_parallelism_threads", threads)
        return make(*args, **kwargs)

    tf.ConfigProto = capped


def run_convmf(split: Split, params: dict[str, Any], recorder: Recorder, threads: int) -> None:
    """Cornac's ConvMF on the split's preprocessed words (``documents.json``: genrec's Sec. 4.1)."""
    import cornac.models.conv_mf.recom_convmf as convmf_module
    from cornac.data import TextModality
    from cornac.data.text import BaseTokenizer
    from cornac.models import ConvMF

    words = split.documents["words"]
    data = train_set(split, explicit=True)
    users, items = index_maps(data, split)
    text = TextModality(
        corpus=list(words),
        ids=[str(i) for i in range(split.n_items)],
        tokenizer=BaseTokenizer(sep=" "),
        max_vocab=int(split.documents["preprocessing"]["vocab_size"]),
    )
    text.build(id_map=data.iid_map)
    data.add_modalities(item_text=text)
    one_thread_sessions(threads)
    model = ConvMF(**params)
    hook = ConvMFHook(
        recorder, lambda: recorder.checkpoint(**convmf_predictions(model, split, users, items))
    )
    convmf_module.trange = hook  # looked up at call time inside _fit_convmf
    model.fit(data)
    hook.book(0)  # the last epoch's CNN passes and re-projection: training, no prediction uses it


# --------------------------------------------------------------------------- MF / BPR


def mf_predictions(model: Any, split: Split, users: np.ndarray, items: np.ndarray) -> dict:
    """Predicted rating per validation/test row (global mean where Cornac lacks the user/item)."""
    out = {}
    for which in ("valid", "test"):
        part = split.parts[which]
        u, i = users[part.users], items[part.items]
        pred = np.full(len(part), float(model.global_mean))
        ok = (u >= 0) & (i >= 0)
        pred[ok] = (
            model.global_mean
            + model.u_biases[u[ok]]
            + model.i_biases[i[ok]]
            + np.einsum("nk,nk->n", model.u_factors[u[ok]], model.i_factors[i[ok]])
        )
        out[f"{which}_pred"] = pred
    return out


def bpr_lists(model: Any, split: Split, users: np.ndarray, items: np.ndarray) -> dict:
    out = {}
    for which in ("valid", "test"):
        u = users[split.eval_users(which)]
        scores = model.u_factors[np.maximum(u, 0)] @ model.i_factors.T + model.i_biases
        scores[u < 0] = 0.0  # a user Cornac never saw: no preference
        out[f"{which}_topk"] = topk_excluding(
            in_our_order(scores, items), split.eval_exclude(which)
        )
    return out


def run_refits(
    model_name: str,
    split: Split,
    params: dict[str, Any],
    recorder: Recorder,
    epochs: int,
    every: int,
) -> None:
    """One fresh fit per checkpoint budget (``max_iter`` = every, 2 every, ..., epochs)."""
    from cornac.models import BPR, MF

    explicit = model_name == "biased-mf"
    data = train_set(split, explicit=explicit)
    users, items = index_maps(data, split)
    for budget in range(1, epochs + 1):
        if not should_checkpoint(budget, epochs, every):
            continue
        model = (MF if explicit else BPR)(**{**params, "max_iter": budget})
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(data)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        arrays = (mf_predictions if explicit else bpr_lists)(model, split, users, items)
        recorder.refit_checkpoint(budget, seconds, cpu, **arrays)


def main() -> int:
    args = adapter_args(__doc__.splitlines()[0], list(MODELS))
    set_threads(args.threads)
    split = read_split(args.split)
    import cornac

    params = settings(args.model, args.epochs, args.seed, args.threads, args.sets)
    if args.model == "convmf":
        import tensorflow

        versions = {"cornac": cornac.__version__, "tensorflow": tensorflow.__version__}
    else:
        import torch

        versions = {"cornac": cornac.__version__, "torch": torch.__version__}
    recorder = Recorder("cornac", args.model, split.protocol, params, versions)
    if args.model == "convmf":
        run_convmf(split, params, recorder, args.threads)
    elif args.model == "mult-vae":
        run_vaecf(split, params, recorder, args.every)
    else:
        run_refits(args.model, split, params, recorder, args.epochs, args.every)
    recorder.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
