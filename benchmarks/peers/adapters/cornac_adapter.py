"""Cornac (Salah, Truong & Lauw, JMLR 2020; ``cornac`` 3.0.1) on the shared split.

Models: VAECF (strong generalization; Cornac's Mult-VAE), MF (ratings; biased MF by
SGD, Cython), BPR (weak generalization; Cython).

* VAECF trains in Cornac's own ``learn`` loop. Its epoch loop iterates over
  ``trange``; the adapter swaps that one name for a range that stops the clock
  after each epoch, ranks the validation and test users (fold-in: the VAE's
  ``encode`` -> ``decode`` at the mean, as Cornac's ``score`` does for its
  training users), and restarts the clock. Cornac's code runs unchanged.
* MF and BPR have no per-epoch hook (their loops are compiled), so each epoch
  budget is a fresh fit with ``max_iter`` = that budget; a checkpoint's time is
  that one fit's.
"""

from __future__ import annotations

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

MODELS = {"mult-vae": "VAECF", "biased-mf": "MF", "bpr-mf": "BPR"}


def settings(model: str, epochs: int, seed: int, threads: int) -> dict[str, Any]:
    """Matched to genrec's defaults where Cornac exposes the knob; Cornac's defaults elsewhere."""
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
    import torch

    params = settings(args.model, args.epochs, args.seed, args.threads)
    recorder = Recorder(
        "cornac",
        args.model,
        split.protocol,
        params,
        {"cornac": cornac.__version__, "torch": torch.__version__},
    )
    if args.model == "mult-vae":
        run_vaecf(split, params, recorder, args.every)
    else:
        run_refits(args.model, split, params, recorder, args.epochs, args.every)
    recorder.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
