"""Training on several processes with PyTorch's own engine (torchrun + DistributedDataParallel).

Every helper here is a no-op in a single process, so a model's ``fit`` reads
the same with one process or N, and a one-process run draws exactly the
random numbers it drew before this module existed.

With N processes (ranks) started by ``torchrun`` (``genrec train --nproc N``
calls torchrun's own launcher; several machines use ``torchrun`` directly
with its rendezvous, docs/training.md):

* ``init_from_env`` joins the process group torchrun describes in the
  environment: Gloo on CPU, NCCL when this process sees a GPU (one GPU per
  local rank).
* ``epoch_batches`` shards the rows a model trains on (users, or items for
  item-based models) with ``torch.utils.data.DistributedSampler``: a fresh
  permutation each epoch, the same on every rank, each rank taking its
  share. Every rank gets the same number of rows (the sampler pads by
  repeating a few), hence the same number of steps, which DDP needs.
* ``data_parallel`` wraps the network in ``DistributedDataParallel``, whose
  backward hooks average the gradients across ranks; each rank's optimiser
  then applies the same update, so the copies stay identical. The loss is
  computed inside DDP's forward (a closure), so a model keeps its own loss
  code instead of being rewritten around ``nn.Module.forward``.
* The configured ``batch_size`` stays the *global* batch: each rank steps on
  ``ceil(batch_size / N)`` rows (``rank_batch_size``), so the number of
  updates per epoch and the meaning of the hyper-parameters do not change
  with N.
* ``reduce_metrics`` combines the validation metrics each rank measured on
  its own share of the held-out users (``all_reduce``), so early stopping and
  the best epoch are decided identically on every rank.
* ``is_main``: only rank 0 prints progress and writes the version.
* ``from_main``: what must be one answer for every rank (the log's read time) is
  asked once, by rank 0, and broadcast.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

from training.errors import ModelError

T = TypeVar("T")

#: A step's loss computation, run inside DDP's forward when distributed (else just called).
ForwardRunner = Callable[[Callable[[], T]], T]


class DistributedError(ModelError, RuntimeError):
    """Ranks that disagree (different data) or a setting that cannot be distributed."""


def launched() -> bool:
    """True in a process that torchrun started as one of several workers."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launched_rank() -> int:
    """This process's rank as torchrun set it (``RANK``), readable before the process group
    exists: 0 in a process torchrun did not start."""
    return int(os.environ.get("RANK", "0"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True in the process that prints progress and writes artifacts (rank 0, or the only one)."""
    return rank() == 0


def backend(device_type: str | None = None) -> str:
    """NCCL for a model on CUDA, Gloo on CPU; without a device type: NCCL when a GPU is seen."""
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    return "nccl" if device_type == "cuda" else "gloo"


def init_from_env(device_type: str | None = None) -> bool:
    """Join the process group torchrun set up in the environment; False when not launched.

    Uses torchrun's ``env://`` rendezvous (MASTER_ADDR, RANK, WORLD_SIZE...).
    ``device_type`` is where the model trains (``cpu`` or ``cuda``; None:
    CUDA when available). On GPUs each local rank takes its own device, so
    ``device=auto`` or ``cuda`` in a model's settings means this rank's GPU.
    """
    if not launched() or active():
        return active()
    name = backend(device_type)
    if name == "nccl":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise DistributedError(
                f"local rank {local} needs its own GPU but torch sees "
                f"{torch.cuda.device_count()}: start at most that many processes per machine "
                "(or train on the CPU with --set device=cpu)"
            )
        torch.cuda.set_device(local)
    dist.init_process_group(backend=name)
    return True


#: What torchrun's agent logs when it is stopped by a signal (it has then stopped the
#: workers): the launcher's caller says it in one line instead.
_SIGNAL_CHATTER = ("Received %s death signal", "Sending process %s closing signal")
_CHATTY_LOGGERS = (
    "torch.distributed.elastic.agent.server.api",
    "torch.distributed.elastic.multiprocessing.api",
)


class _NoSignalChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(_SIGNAL_CHATTER))


def launch(nproc: int, module: str, args: list[str]) -> int:
    """Run ``python -m module *args`` on ``nproc`` local processes with torchrun; its exit code.

    Torchrun's own launcher (``torch.distributed.run``, ``--standalone``: a
    private rendezvous on a free local port) starts the workers and watches
    them; ``genrec train --nproc N`` calls this. For several machines run
    ``torchrun`` itself (docs/training.md). A failed worker's own error is
    already on stderr; the code returned is the first failed rank's. A signal
    that stops the launcher (Ctrl-C: SIGINT, or SIGTERM) returns 128 + its number,
    as a shell reports it (130 for Ctrl-C), once torchrun has stopped the workers:
    torchrun raises it as ``SignalException``, a ~50-line traceback.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    options = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--module", module, *args]
    )
    quiet = _NoSignalChatter()
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    try:
        run(options)
    except ChildFailedError as exc:
        first = min(exc.failures)
        code = exc.failures[first].exitcode
        return code if code > 0 else 1
    except SignalException as exc:
        return 128 + int(exc.sigval)
    finally:
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).removeFilter(quiet)
    return 0


#: Exit codes of a run stopped by Ctrl-C (SIGINT) or SIGTERM, as a shell reports them.
INTERRUPTED_CODES = frozenset({128 + signal.SIGINT, 128 + signal.SIGTERM})


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def session(device_type: str | None = None) -> Iterator[bool]:
    """``with session() as distributed:`` joins torchrun's group (if any) and leaves it after."""
    joined = init_from_env(device_type)
    try:
        yield joined
    except BaseException:
        if joined:
            shutdown()
        raise
    if joined:
        # Every rank reaches here before any rank tears Gloo down: a rank that exits
        # while a peer's last collective is still in flight can abort the peer at exit
        # ("terminate called without an active exception", seen once in CI).
        dist.barrier()
        shutdown()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (a download, a cache fill), then the others."""
    if not active():
        yield
        return
    if not is_main():
        dist.barrier()
    yield
    if is_main():
        dist.barrier()


def barrier() -> None:
    if active():
        dist.barrier()


def rank_seed(seed: int) -> int:
    """A seed per rank (``seed`` itself on rank 0 and in one process): ranks draw different noise."""
    return seed + rank()


def rank_batch_size(batch_size: int) -> int:
    """Rows per step on this rank so that all ranks together step on ``batch_size`` rows."""
    return max(1, math.ceil(batch_size / world_size()))


def rank_share(n: int) -> int:
    """How many of ``n`` draws this rank makes (the same on every rank)."""
    return math.ceil(n / world_size())


def epoch_batches(
    n: int, batch_size: int, rng: np.random.Generator, epoch: int, seed: int
) -> Iterator[np.ndarray]:
    """Positions ``0..n-1`` of this epoch's rows, shuffled and cut into this rank's batches.

    One process: ``rng.permutation(n)`` cut into ``batch_size`` (what the
    models always did). N processes: this rank's share of
    ``DistributedSampler(shuffle=True, seed=seed)`` for ``epoch``, cut into
    ``rank_batch_size(batch_size)``; ``rng`` is not used.
    """
    if batch_size < 1:
        raise ModelError(f"batch_size must be at least 1, got {batch_size}")
    if not active():
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]
        return
    if n < world_size():
        raise DistributedError(f"{n} training rows cannot be shared by {world_size()} processes")
    # The sampler only reads the data set's length: a range stands in for the rows.
    sampler: DistributedSampler[int] = DistributedSampler(
        cast("Dataset[int]", range(n)), shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    mine = np.fromiter(iter(sampler), dtype=np.int64)
    step = rank_batch_size(batch_size)
    for start in range(0, len(mine), step):
        yield mine[start : start + step]


class _LossModule(nn.Module):
    """Holds the network so DDP sees its parameters; forward runs a model's loss closure."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, compute: Callable[[], Any]) -> Any:
        return compute()


def run_locally(compute: Callable[[], T]) -> T:
    return compute()


def data_parallel(net: nn.Module) -> ForwardRunner[Any]:
    """A runner for each step's loss: through DistributedDataParallel when distributed.

    ``loss = runner(lambda: model_loss(batch))``; then ``loss.backward()``
    averages the gradients of ``net``'s parameters across ranks. Building
    the wrapper broadcasts rank 0's initial parameters, so every rank starts
    from the same network; afterwards each rank reseeds torch with
    ``rank_seed`` so dropout and sampling noise differ between ranks.
    """
    if not active():
        return run_locally
    device = next(net.parameters()).device
    ddp = DistributedDataParallel(
        _LossModule(net),
        device_ids=[device.index] if device.type == "cuda" else None,
    )
    torch.manual_seed(rank_seed(torch.initial_seed()))

    def run(compute: Callable[[], Any]) -> Any:
        return ddp(compute)

    return run


def _device() -> torch.device:
    """Where collectives' tensors live: NCCL reduces CUDA tensors, Gloo CPU ones."""
    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")


def mean_across_ranks(values: Mapping[str, float]) -> dict[str, float]:
    """Each key's mean over the ranks (per-epoch losses, so progress describes every rank)."""
    if not active() or not values:
        return dict(values)
    keys = list(values)  # every rank's run_epoch returns the same keys in the same order
    buffer = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=_device())
    dist.all_reduce(buffer)
    return {k: float(v) / world_size() for k, v in zip(keys, buffer.tolist(), strict=True)}


#: Metrics that are counts (summed over ranks) and root-mean-squares (combined as squares).
_SUMS = frozenset({"n", "n_default"})
_ROOT_MEAN_SQUARES = frozenset({"rmse"})


def reduce_metrics(metrics: Mapping[str, float], weight: float) -> dict[str, float]:
    """Combine per-rank validation metrics into what one process would have measured.

    ``weight`` is how many units (users for top-k, ratings for RMSE) this
    rank's means are over. Means are weighted by it, RMSE combines as the
    root of the weighted mean of squares, counts add up. All ranks return
    the same numbers.
    """
    if not active():
        return dict(metrics)
    keys = sorted(metrics)
    check_same(keys, "validation metric names")
    row = []
    for key in keys:
        value = metrics[key]
        if key in _SUMS:
            row.append(value)
        elif key in _ROOT_MEAN_SQUARES:
            row.append(weight * value * value)
        else:
            row.append(weight * value)
    buffer = torch.tensor([*row, weight], dtype=torch.float64, device=_device())
    dist.all_reduce(buffer)
    *totals, total_weight = buffer.tolist()
    out: dict[str, float] = {}
    for key, total in zip(keys, totals, strict=True):
        if key in _SUMS:
            out[key] = total
        elif key in _ROOT_MEAN_SQUARES:
            out[key] = math.sqrt(total / total_weight)
        else:
            out[key] = total / total_weight
    return out


def check_same(value: object, what: str) -> None:
    """Raise on every rank unless every rank holds an equal ``value`` (e.g. the data's fingerprint)."""
    if not active():
        return
    gathered: list[object] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    if any(other != gathered[0] for other in gathered):
        raise DistributedError(f"the {world_size()} processes disagree on {what}: {gathered}")


def broadcast_from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank."""
    if not active():
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def from_main(compute: Callable[[], T]) -> T:
    """``compute()`` run on rank 0 alone, its result on every rank.

    For what every rank must agree on and only one should ask for (the log's read time:
    one database query, one instant, instead of one query per rank and answers that may
    differ). What ``compute`` raises on rank 0 is raised there; the other ranks raise
    ``DistributedError`` with its message instead of waiting for a value that never
    comes.
    """
    if not active():
        return compute()
    box: tuple[Any, str | None] = (None, None)
    if is_main():
        try:
            box = (compute(), None)
        except Exception as exc:
            broadcast_from_main((None, f"{type(exc).__name__}: {exc}"))
            raise
    value, error = broadcast_from_main(box)
    if error is not None:
        raise DistributedError(f"rank 0 could not do what every rank waits for: {error}")
    return cast("T", value)
