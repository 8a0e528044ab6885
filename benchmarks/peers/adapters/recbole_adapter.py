"""RecBole (Zhao et al., CIKM 2021; ``recbole`` 1.2.1) on the shared split.

Models: MultiVAE, MultiDAE, EASE (strong generalization), BPR (weak generalization).

Training is RecBole's own: its ``Config``, ``create_dataset``, ``data_preparation``,
model class and ``Trainer._train_epoch`` (its data loader, loss, optimizer), one call
per epoch; the clock runs around those calls only. RecBole's own evaluation is not
used: after each epoch the adapter ranks the validation and test users itself and
genrec scores the lists. Strong generalization needs fold-in, which RecBole's
pipeline does not offer (its autoencoders look up a *training* user's history), so
the adapter calls the model's own ``forward`` on the held-out users' fold-in rows
(MultiVAE/MultiDAE: dense click rows in RecBole's item order; EASE: ``X B``).
"""

from __future__ import annotations

import os
from pathlib import Path
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

MODELS = {"mult-vae": "MultiVAE", "mult-dae": "MultiDAE", "ease": "EASE", "bpr-mf": "BPR"}


def _numpy2_shim() -> None:
    """RecBole 1.2.1 aliases numpy names removed in numpy 2 (np.float_ ...); Cornac needs numpy 2.

    Restoring the removed names lets both run in one venv; the aliases point at
    the same dtypes numpy 1 had.
    """
    for old, new in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
        if not hasattr(np, old):
            setattr(np, old, getattr(np, new))


def model_settings(model: str, epochs: int, seed: int) -> dict[str, Any]:
    """Hyper-parameters matched to genrec's defaults where RecBole exposes them."""
    common: dict[str, Any] = {"epochs": epochs, "seed": seed, "learning_rate": 1e-3}
    if model == "mult-vae":
        # latent_dimension is the encoder's output width (mu and logvar halves): 400 -> K = 200.
        # train_batch_size counts users for RecBole's autoencoders: genrec's 500.
        return {
            **common,
            "mlp_hidden_size": [600],
            "latent_dimension": 400,
            "dropout_prob": 0.5,
            "anneal_cap": 0.2,
            "total_anneal_steps": 200000,
            "train_neg_sample_args": None,
            "train_batch_size": 500,
        }
    if model == "mult-dae":
        # RecBole cannot express I -> 200 (tanh) -> I: its last encoder layer is linear. Its
        # default I -> 600 -> 64 -> 600 -> I is kept.
        return {
            **common,
            "mlp_hidden_size": [600],
            "latent_dimension": 64,
            "dropout_prob": 0.5,
            "train_neg_sample_args": None,
            "train_batch_size": 500,
        }
    if model == "ease":
        return {**common, "reg_weight": 500.0, "train_neg_sample_args": None}
    return {**common, "embedding_size": 64, "learning_rate": 2e-3, "train_batch_size": 256}


def write_atomic(split: Split, root: Path, name: str) -> None:
    """RecBole's atomic files: ``name.train.inter`` (+ one-row valid/test it never uses)."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    train = split.parts["train"]
    rows = "".join(f"{u}\t{i}\n" for u, i in zip(train.users, train.items, strict=True))
    header = "user_id:token\titem_id:token\n"
    (directory / f"{name}.train.inter").write_text(header + rows)
    first = f"{train.users[0]}\t{train.items[0]}\n"
    for part in ("valid", "test"):
        (directory / f"{name}.{part}.inter").write_text(header + first)


def build(
    model: str, split: Split, work: Path, epochs: int, seed: int, device: str = "cpu"
) -> tuple[Any, ...]:
    """RecBole's config, dataset, train loader, model and trainer, as its quick-start builds them."""
    _numpy2_shim()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    write_atomic(split, work / "recbole_data", "peers")
    config_dict = {
        "data_path": str(work / "recbole_data"),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "checkpoint_dir": str(work / "saved"),
        "device": device,
        "use_gpu": device != "cpu",
        "gpu_id": "0" if device != "cpu" else "",
        "worker": 0,
        "show_progress": False,
        "state": "ERROR",
        "reproducibility": True,
        "metrics": ["NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        **model_settings(model, epochs, seed),
    }
    config = Config(model=MODELS[model], dataset="peers", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model_cls = get_model(config["model"])
    trainer_cls = get_trainer(config["MODEL_TYPE"], config["model"])
    return config, dataset, train_data, model_cls, trainer_cls


def internal_ids(dataset: Any, field: str, n: int) -> np.ndarray:
    """(n,) RecBole's internal id of each of our dense indices (-1 where RecBole has none)."""
    out = np.full(n, -1, dtype=np.int64)
    for token, internal in dataset.field2token_id[field].items():
        if token != "[PAD]":
            out[int(token)] = internal
    return out


def scores_for(model_name: str, model: Any, split: Split, which: str, ids: dict) -> np.ndarray:
    """(U_eval, I) scores in OUR item order for the evaluated users of ``which``."""
    import torch

    history = split.eval_history(which)
    item_rb = ids["item"]
    n_rb = int(item_rb.max()) + 1
    model.eval()
    with torch.no_grad():
        if model_name == "bpr-mf":
            users = torch.as_tensor(ids["user"][split.eval_users(which)], device=model.device)
            rb = model.user_embedding(users) @ model.item_embedding.weight.T
        elif model_name == "ease":
            import scipy.sparse as sp

            coo = history.tocoo()
            x = sp.csr_matrix(
                (coo.data, (coo.row, item_rb[coo.col])), shape=(history.shape[0], n_rb)
            )
            rb = torch.as_tensor(np.asarray(x @ model.item_similarity))
        else:
            dense = torch.zeros(history.shape[0], n_rb)
            coo = history.tocoo()
            dense[coo.row, item_rb[coo.col]] = 1.0
            dense = dense.to(model.device)
            out = model.forward(dense)
            rb = out[0] if isinstance(out, tuple) else out
    rb = rb.float().cpu().numpy()
    scores = np.full((history.shape[0], split.n_items), -np.inf)
    known = item_rb >= 0
    scores[:, known] = rb[:, item_rb[known]]
    return scores


def checkpoint(recorder: Recorder, model_name: str, model: Any, split: Split, ids: dict) -> None:
    lists = {}
    for which in ("valid", "test"):
        scores = scores_for(model_name, model, split, which, ids)
        lists[f"{which}_topk"] = topk_excluding(scores, split.eval_exclude(which))
    recorder.checkpoint(**lists)


def main() -> int:
    args = adapter_args(__doc__.splitlines()[0], list(MODELS))
    set_threads(args.threads)
    split = read_split(args.split)
    work = args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # RecBole writes log/ and log_tensorboard/ into the working directory
    import recbole
    import torch

    recorder = Recorder(
        "recbole",
        args.model,
        split.protocol,
        model_settings(args.model, args.epochs, args.seed),
        {"recbole": recbole.__version__, "torch": torch.__version__},
    )
    # Data set-up (RecBole's dataset and loaders) is not training time, as genrec's CSV read is not.
    config, dataset, train_data, model_cls, trainer_cls = build(
        args.model, split, work, args.epochs, args.seed, args.device
    )
    ids = {
        "item": internal_ids(dataset, "item_id", split.n_items),
        "user": internal_ids(dataset, "user_id", split.n_users),
    }
    with recorder.training(epochs=1 if args.model == "ease" else 0):  # EASE fits in __init__
        model = model_cls(config, train_data._dataset).to(config["device"])
        trainer = trainer_cls(config, model)
    if args.model == "ease":
        checkpoint(recorder, args.model, model, split, ids)
    else:
        for epoch in range(args.epochs):
            with recorder.training():
                trainer._train_epoch(train_data, epoch)
            if should_checkpoint(epoch + 1, args.epochs, args.every):
                checkpoint(recorder, args.model, model, split, ids)
    recorder.write(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
