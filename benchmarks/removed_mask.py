"""What masking items removed from the catalog costs a batch (``app.serving.removed``).

Two ways to keep removed items out of a batch's lists, on one torch thread:

* ``banned``: their indices added to every job's banned array, which ``_mask``
  scatters into the batch's (B, I) mask one job at a time, and ``candidate_mask``
  tests with ``np.isin`` on the index path (what ``exclude`` does);
* ``row``: one shared ``RemovedMask`` per model, OR-ed into the batch's mask as one
  broadcast row, and looked up by index on the index path (what serving does).

Prints, per number of removed items, the microseconds of the per-request mask lookup
(``RemovedItems.mask``), of ``_mask`` for a batch of ``--batch`` lists over ``--items``
items, and of ``candidate_mask`` over 400 candidates.

    PYTHONPATH=$PWD python benchmarks/removed_mask.py --items 1682 --batch 64
"""

from __future__ import annotations

import argparse
import timeit
from types import SimpleNamespace
from typing import cast

import numpy as np
import torch

from app.serving.batcher import RankJob, _mask, candidate_mask
from app.serving.loaded import LoadedModel
from app.serving.removed import RemovedItems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1682)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--removed", default="0,100,1000")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = args.items
    model = cast(
        LoadedModel,
        SimpleNamespace(
            name="m", revision="1", n_items=n, item_index={str(i): i for i in range(n)}
        ),
    )
    candidates = np.random.default_rng(0).choice(n, min(400, n), replace=False)
    for count in (int(c) for c in args.removed.split(",")):
        print(measure(model, count, args.batch, candidates))


def measure(model: LoadedModel, count: int, batch: int, candidates: np.ndarray) -> str:
    """One line of figures with the first ``count`` items removed."""
    n, cpu = model.n_items, torch.device("cpu")
    removed = RemovedItems()
    removed.update((str(i), True) for i in range(count))
    mask = removed.mask(model)
    ids = mask.indices if mask is not None else np.zeros(0, np.int64)
    banned = [RankJob(None, ids, None, 10) for _ in range(batch)]
    row = [RankJob(None, np.zeros(0, np.int64), None, 10, removed=mask)] * batch
    lookup = timeit.timeit(lambda: removed.mask(model), number=20_000) / 20_000 * 1e6
    scatter = timeit.timeit(lambda: _mask(banned, n, cpu), number=300) / 300 * 1e6
    broadcast = timeit.timeit(lambda: _mask(row, n, cpu), number=300) / 300 * 1e6
    isin = timeit.timeit(lambda: candidate_mask(banned[0], candidates), number=2000) / 2000
    take = timeit.timeit(lambda: candidate_mask(row[0], candidates), number=2000) / 2000
    return (
        f"removed={count:5d}  lookup {lookup:5.2f} us | _mask {batch}x{n}: banned "
        f"{scatter:7.1f} us, row {broadcast:7.1f} us | candidate_mask {candidates.size}: "
        f"banned {isin * 1e6:5.1f} us, row {take * 1e6:5.1f} us"
    )


if __name__ == "__main__":
    main()
