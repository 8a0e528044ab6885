"""Seconds per training epoch of Mult-VAE (paper architecture, 500 users per batch).

Two workloads:

* ``ml-100k``: MovieLens-100K clicks (ratings > 3.5), every user with a click.
* ``synthetic``: a random click matrix of ML-20M's shape and density after
  Liang et al.'s preprocessing (136,677 users x 20,108 items, ~10M clicks),
  item popularity Zipf-like; ``--users/--items/--clicks`` scale it down.

Usage::

    python benchmarks/train_speed.py                       # both, on cpu
    python benchmarks/train_speed.py --workload synthetic --users 34169 \\
        --items 20108 --clicks 2500000 --device cuda --epochs 3

Prints one line per workload: shape, device, threads and the mean seconds per
epoch over ``--epochs`` timed epochs (``--warmup`` epochs, default one, run
first and are not counted). No validation runs inside the timed epochs.
``--profile`` then trains once more and prints ``torch.profiler``'s table of
its second epoch (host operators by self CPU time; on a GPU, kernels too).

``--nproc N`` trains on N local processes with torchrun and
DistributedDataParallel (``training.distributed``, Gloo on CPU), each with
``--threads`` torch threads; ``batch_size`` stays the global batch (500),
each rank steps on 500 / N users. Rank 0 prints the line, with the load
average before and after (the figures are wall-clock seconds: on a shared
machine they say as much about the neighbours as about genrec)::

    python -m benchmarks.train_speed --workload synthetic --users 100000 \
        --items 20000 --clicks 7000000 --epochs 1 --warmup 0 --threads 1 --nproc 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from training import distributed
from training.data.interactions import IdMap, Interactions
from training.models.mult_vae import MultVAE

ML20M_USERS, ML20M_ITEMS, ML20M_CLICKS = 136_677, 20_108, 10_000_000


def synthetic_clicks(users: int, items: int, clicks: int, seed: int = 0) -> Interactions:
    """Random clicks with Zipf-like item popularity; duplicates collapse (so ~``clicks``)."""
    if min(users, items, clicks) < 1:
        raise SystemExit("--users, --items and --clicks must be >= 1")
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (1.0 + np.arange(items)) ** 0.8
    u = rng.integers(0, users, size=clicks, dtype=np.int64)
    i = rng.choice(items, size=clicks, p=popularity / popularity.sum()).astype(np.int64)
    return Interactions(
        users=u,
        items=i,
        ratings=np.ones(clicks, dtype=np.float32),
        timestamps=np.zeros(clicks, dtype=np.int64),
        user_ids=IdMap(tuple(str(k) for k in range(users))),
        item_ids=IdMap(tuple(str(k) for k in range(items))),
        explicit=False,
    )


def ml100k_clicks(data_dir: str | None) -> Interactions:
    """ML-100K ratings > 3.5 as clicks (the strong-generalization preprocessing)."""
    from training.data.datasets import load_dataset

    return load_dataset("ml-100k", data_dir=data_dir).binarize(3.5)


def seconds_per_epoch(
    data: Interactions, device: str, epochs: int, warmup: int = 1, bf16: bool = False
) -> tuple[float, float]:
    """Mean wall and CPU seconds of ``epochs`` training epochs after ``warmup`` untimed ones.

    CPU seconds are this process's (all its threads), summed over the ranks
    when distributed: the work an epoch took, which a busy machine stretches
    in wall time but hardly changes. The first epoch's CPU count starts
    before ``fit`` (so with ``--warmup 0`` it includes building the net).
    """
    model = MultVAE(MultVAE.Config(epochs=epochs + warmup, device=device, bf16=bf16))
    marks = [time.process_time()]
    report = model.fit(data, callbacks=[lambda _: marks.append(time.process_time())])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    cpu = float(np.mean(np.diff(marks)[warmup:]))
    cpu = distributed.mean_across_ranks({"cpu": cpu})["cpu"] * distributed.world_size()
    return float(np.mean([e.seconds for e in report.history[warmup:]])), cpu


def profiled_epoch(data: Interactions, device: str, bf16: bool = False) -> str:
    """``torch.profiler``'s table of one training epoch, after one unprofiled warm-up epoch.

    Why: on an H200 the epoch was host-bound (as many CPU seconds as wall seconds,
    bf16 no faster, docs/performance.md "On a GPU"), and a lent GPU comes with
    minutes; this prints where the host's and the device's time go in the same run.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    profiler = profile(activities=activities)
    started = False

    def start_after_warmup(_: object) -> None:
        nonlocal started
        if not started:
            profiler.start()
            started = True

    report = MultVAE(MultVAE.Config(epochs=2, device=device, bf16=bf16)).fit(
        data, callbacks=[start_after_warmup]
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    profiler.stop()
    events = profiler.key_averages()
    tables = [events.table(sort_by="self_cpu_time_total", row_limit=20)]
    if device.startswith("cuda"):
        try:
            tables.append(events.table(sort_by="self_device_time_total", row_limit=12))
        except (AttributeError, KeyError):  # torch before 2.4 names it after CUDA
            tables.append(events.table(sort_by="self_cuda_time_total", row_limit=12))
    wall = report.history[-1].seconds
    heading = (
        f"# profiled epoch: {wall:.3f} s wall (profiler overhead included); the host time "
        "the table does not account for is Python outside torch operators (batch building)"
    )
    return "\n".join([heading, *tables])


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line for the workers: the same, minus ``--nproc N``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=["ml-100k", "synthetic", "both"], default="both")
    parser.add_argument("--users", type=int, default=ML20M_USERS)
    parser.add_argument("--items", type=int, default=ML20M_ITEMS)
    parser.add_argument("--clicks", type=int, default=ML20M_CLICKS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--bf16", action="store_true", help="dense layers in bfloat16 (Mult-VAE's bf16 setting)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-dir", default=os.environ.get("GENREC_DATA_DIR"))
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    parser.add_argument("--nproc", type=int, default=1, help="processes (torchrun + DDP)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then profile one more epoch (torch.profiler; host and device) and print its table",
    )
    args = parser.parse_args()
    if args.nproc > 1 and not distributed.launched():
        sys.exit(
            distributed.launch(args.nproc, "benchmarks.train_speed", _without_nproc(sys.argv[1:]))
        )
    torch.set_num_threads(args.threads)
    with distributed.session():
        run(args)


def run(args: argparse.Namespace) -> None:
    workloads = ["ml-100k", "synthetic"] if args.workload == "both" else [args.workload]
    processes = distributed.world_size()
    for name in workloads:
        load_before = _load()
        started = time.perf_counter()
        if name == "ml-100k":
            data = ml100k_clicks(args.data_dir)
        else:
            data = synthetic_clicks(args.users, args.items, args.clicks)
        matrix = data.to_csr("ones")
        active = int((np.diff(matrix.indptr) > 0).sum())
        built = time.perf_counter() - started
        spe, cpu = seconds_per_epoch(data, args.device, args.epochs, args.warmup, args.bf16)
        if not distributed.is_main():
            continue
        print(
            f"mult-vae {name}: {active} users x {data.n_items} items, {matrix.nnz} clicks | "
            f"device={args.device} bf16={args.bf16} processes={processes} threads={args.threads} | "
            f"{spe:.3f} s/epoch, {cpu:.2f} CPU s/epoch over all processes "
            f"(mean of {args.epochs} after {args.warmup} warm-up; "
            f"data built in {built:.1f} s) | load average {load_before} -> {_load()}",
            flush=True,
        )
        if args.profile and processes == 1:
            print(profiled_epoch(data, args.device, args.bf16), flush=True)


if __name__ == "__main__":
    main()
