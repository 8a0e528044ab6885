"""The CPU kernel timings docs/peers.md quotes for Mult-VAE training at 20,000 items.

    .venv/bin/python benchmarks/cpu_kernels.py

Prints, on one torch thread, milliseconds per call of:

* ``torch.zeros(20000, 600)`` with glibc's default allocator (a fresh mmap
  each time) and with ``training.allocator.keep_freed_memory`` (reused heap),
  each in its own process, since the setting is process-wide;
* the sparse first layer's forward + backward (a (500, 20000) COO batch with
  36,000 clicks times a (20000, 600) weight), both ways;
* the output layer's three products at (500, 600) x (600, 20000) in float32
  and in bfloat16.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import torch

B, ITEMS, H, NNZ = 500, 20000, 600, 36000  # batch, catalog, hidden width, clicks


def ms_per_call(fn: Callable[[], object], repeat: int = 10) -> float:
    fn()  # warm-up
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1000


def allocator_cells() -> dict[str, float]:
    """This process's zeros and sparse-layer timings (the caller picks the allocator)."""
    torch.manual_seed(0)
    rows, cols = torch.randint(0, B, (NNZ,)), torch.randint(0, ITEMS, (NNZ,))
    x = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.rand(NNZ), (B, ITEMS)).coalesce()
    weight = torch.randn(ITEMS, H, requires_grad=True)

    def sparse_layer() -> None:
        weight.grad = None
        y = torch.sparse.mm(x, weight)
        y.backward(torch.ones_like(y))

    return {
        "zeros": ms_per_call(lambda: torch.zeros(ITEMS, H)),
        "sparse": ms_per_call(sparse_layer),
    }


def gemm_cells() -> dict[str, dict[str, float]]:
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, w = torch.randn(B, H, dtype=dtype), torch.randn(H, ITEMS, dtype=dtype)
        g = torch.randn(B, ITEMS, dtype=dtype)
        out[str(dtype).removeprefix("torch.")] = {
            "forward (B,H)x(H,I)": ms_per_call(lambda a=a, w=w: a @ w),
            "grad wrt input": ms_per_call(lambda g=g, w=w: g @ w.T),
            "grad wrt weight": ms_per_call(lambda a=a, g=g: a.T @ g),
        }
    return out


def main() -> None:
    torch.set_num_threads(1)
    if sys.argv[1:] == ["_allocator", "keep"]:
        from training.allocator import keep_freed_memory

        keep_freed_memory()
    if sys.argv[1:2] == ["_allocator"]:
        print(json.dumps(allocator_cells()))
        return
    for mode, label in (("default", "glibc default"), ("keep", "keep_freed_memory")):
        cells = subprocess.run(
            [sys.executable, __file__, "_allocator", mode],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "GENREC_KEEP_FREED_MEMORY": "1"},
        ).stdout
        values = json.loads(cells)
        print(
            f"{label:>18}: torch.zeros({ITEMS}, {H}) {values['zeros']:6.1f} ms | "
            f"sparse first layer fwd+bwd {values['sparse']:6.1f} ms"
        )
    for dtype, cells in gemm_cells().items():
        print(f"{dtype:>18}: " + " | ".join(f"{k} {v:5.1f} ms" for k, v in cells.items()))


if __name__ == "__main__":
    main()
