"""CPU seconds per Mult-VAE epoch as shipped, and as it was before its two speed-ups.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.peers.profile_mult_vae \
        [--users 3000] [--items 20000] [--variants before shipped bf16] [--profile]

``bf16`` is the shipped model with ``bf16=true`` (the output layer's products
in bfloat16). ``shipped`` is ``training/models/mult_vae.py`` as it is: the L2 term skipped
when ``lam == 0`` (Mult-VAE's default) and Adam built with ``fused=True``.
``before`` patches this process only, to put back what the model did before
those changes (compute ``0 · Σ W²`` and back-propagate through it every batch;
unfused Adam), so the before/after stays measurable. ``--profile`` prints the
torch-profiler table of one shipped epoch. Data: a synthetic click matrix at
ML-20M's density (``run.synthetic_clicks``).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

import torch

import training.models.mult_vae as mult_vae
from benchmarks.peers.run import ML20M_DENSITY, synthetic_clicks
from training.data.interactions import Interactions
from training.models import model_class

VARIANTS = ("before", "shipped", "bf16")
#: Model settings per variant on top of the shipped defaults.
SETTINGS = {"bf16": {"bf16": "true"}}


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
    original_penalty = mult_vae.ClickAutoencoder.weight_penalty
    original_adam = torch.optim.Adam
    if variant == "before":

        def penalty(self: mult_vae.ClickAutoencoder) -> torch.Tensor:
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

        mult_vae.ClickAutoencoder.weight_penalty = penalty  # type: ignore[method-assign]
        torch.optim.Adam = UnfusedAdam  # type: ignore[misc]

    def undo() -> None:
        mult_vae.ClickAutoencoder.weight_penalty = original_penalty  # type: ignore[method-assign]
        torch.optim.Adam = original_adam  # type: ignore[misc]

    return undo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = synthetic_clicks(args.users, args.items, ML20M_DENSITY, seed=0)
    print(f"{args.users} x {args.items}: {len(data)} clicks")
    base = None
    for variant in args.variants:
        undo = patched(variant)
        try:
            seconds = cpu_seconds_per_epoch(data, settings=SETTINGS.get(variant))
        finally:
            undo()
        base = base or seconds
        print(f"{variant:>10}: {seconds:.2f} CPU s/epoch ({base / seconds:.2f}x)", flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            cpu_seconds_per_epoch(data, epochs=2)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
