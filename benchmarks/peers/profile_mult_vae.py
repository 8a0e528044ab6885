"""CPU seconds per Mult-VAE epoch as shipped, and as it was before its two speed-ups.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.peers.profile_mult_vae \
        [--users 3000] [--items 20000 | --ml-100k] [--variants before shipped bf16] \
        [--profile [--profile-variant bf16]]

``bf16`` is the shipped model with ``bf16=true`` (the dense layers' products
in bfloat16). ``shipped`` is ``training/models/mult_vae.py`` (and ``common/click_autoencoder.py``) as it is: the L2 term skipped
when ``lam == 0`` (Mult-VAE's default) and Adam built with ``fused=True``.
``before`` patches this process only, to put back what the model did before
those changes (compute ``0 · Σ W²`` and back-propagate through it every batch;
unfused Adam), so the before/after stays measurable. ``--profile`` prints the
torch-profiler table of one shipped epoch (``--profile-variant`` picks which),
grouped by operator and input shape. Data: a synthetic click matrix at ML-20M's
density (``run.synthetic_clicks``), or with ``--ml-100k`` the training users of
the strong-generalization split of MovieLens-100K (seed 0, as the peers run
writes it; needs ``GENREC_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

import torch

import training.models.common.click_autoencoder as click_autoencoder
from benchmarks.peers.run import ML20M_DENSITY, synthetic_clicks
from training.data.interactions import Interactions
from training.models import model_class

VARIANTS = ("before", "shipped", "bf16")
#: Model settings per variant on top of the shipped defaults.
SETTINGS = {"bf16": {"bf16": "true"}}


def ml100k_training_users() -> Interactions:
    """The clicks of the strong-generalization training users of ML-100K, seed 0."""
    from training.data.splits import strong_generalization
    from training.protocols.common import load
    from training.protocols.strong_generalization import clicks

    data = clicks(load("ml-100k", None), 3.5, 5)
    return strong_generalization(data, 150, 150, 0.8, seed=0).train.compact()


def cpu_seconds_per_epoch(
    data: Interactions, epochs: int = 3, settings: dict[str, str] | None = None
) -> float:
    """Mean CPU seconds of epochs 2..n (epoch 1 carries set-up and warm-up)."""
    cls = model_class("mult-vae")
    overrides = {"epochs": str(epochs), "seed": "0", **(settings or {})}
    model = cls(cls.Config().with_overrides(overrides))
    marks: list[float] = []
    model.fit(data, callbacks=[lambda _: marks.append(time.process_time())])
    steps = [b - a for a, b in itertools.pairwise(marks)]
    return sum(steps) / len(steps)


def patched(variant: str) -> Callable[[], None]:
    """Apply ``variant``'s patches; returns the function that undoes them."""
    original_penalty = click_autoencoder.ClickAutoencoder.weight_penalty
    original_adam = torch.optim.Adam
    if variant == "before":

        def penalty(self: click_autoencoder.ClickAutoencoder) -> torch.Tensor:
            assert self.net is not None
            total = torch.zeros(())
            for name, param in self.net.named_parameters():
                if name.endswith("weight"):
                    total = total + (param * param).sum()
            return self.config.lam * total

        class UnfusedAdam(original_adam):  # type: ignore[misc, valid-type]
            def __init__(self, params, **kwargs) -> None:  # type: ignore[no-untyped-def]
                kwargs.pop("fused", None)
                super().__init__(params, **kwargs)

        click_autoencoder.ClickAutoencoder.weight_penalty = penalty  # type: ignore[method-assign]
        torch.optim.Adam = UnfusedAdam  # type: ignore[misc]

    def undo() -> None:
        click_autoencoder.ClickAutoencoder.weight_penalty = original_penalty  # type: ignore[method-assign]
        torch.optim.Adam = original_adam  # type: ignore[misc]

    return undo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--ml-100k", action="store_true", help="ML-100K instead of synthetic")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs + 1 warm-up")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-variant", default="shipped", choices=VARIANTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.ml_100k:
        data = ml100k_training_users()
    else:
        data = synthetic_clicks(args.users, args.items, ML20M_DENSITY, seed=0)
    print(f"{data.n_users} x {data.n_items}: {len(data)} clicks")
    base = None
    for variant in args.variants:
        undo = patched(variant)
        try:
            seconds = cpu_seconds_per_epoch(data, args.epochs, SETTINGS.get(variant))
        finally:
            undo()
        base = base or seconds
        print(f"{variant:>10}: {seconds:.4f} CPU s/epoch ({base / seconds:.2f}x)", flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        undo = patched(args.profile_variant)
        try:
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                cpu_seconds_per_epoch(data, args.epochs, SETTINGS.get(args.profile_variant))
        finally:
            undo()
        table = prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=28
        )
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
