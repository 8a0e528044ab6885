"""``training.distributed``: one process behaves as before; two (Gloo) stay in step.

The two-process test launches ``tests/training/ddp_worker.py`` with torchrun's
own launcher (``distributed.launch``) and checks, for each distributed model
family (Mult-DAE's click autoencoder, U- and I-AutoRec, CF-NADE, BPR-MF,
biased MF):
both ranks end with bit-identical parameters (gradients averaged by DDP,
the same optimiser steps), agree on the metrics, and those metrics are the
whole held-out slice's, not one rank's share; and that ``from_main`` runs on rank 0
alone and hands its answer, or its failure, to every rank.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from training import distributed


def test_one_process_batches_are_the_models_old_permutation() -> None:
    """A one-process run draws exactly what the models drew before (same rng calls)."""
    rows = np.arange(100, 137)
    batches = list(distributed.epoch_batches(len(rows), 10, np.random.default_rng(3), 1, 0))
    expected = np.random.default_rng(3).permutation(rows)
    assert [len(b) for b in batches] == [10, 10, 10, 7]
    assert np.array_equal(rows[np.concatenate(batches)], expected)


def test_one_process_helpers_change_nothing() -> None:
    assert not distributed.active() and distributed.is_main()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.rank_seed(7) == 7 and distributed.rank_batch_size(500) == 500
    metrics = {"rmse": 0.9, "n": 10.0, "ndcg@10": 0.3}
    assert distributed.reduce_metrics(metrics, weight=10) == metrics
    assert distributed.mean_across_ranks({"loss": 2.0}) == {"loss": 2.0}
    assert distributed.broadcast_from_main("x") == "x"
    assert distributed.from_main(lambda: "y") == "y"


def test_two_processes_stay_identical_and_reduce_the_whole_slice(tmp_path: Path) -> None:
    code = distributed.launch(2, "tests.training.ddp_worker", [str(tmp_path)])
    assert code == 0
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r.pop("_world") for r in ranks] == [{"rank": 0, "size": 2}, {"rank": 1, "size": 2}]
    # Rank 0 alone computes; every rank gets its answer, or its failure.
    first, second = (r.pop("_from_main") for r in ranks)
    assert first == {"ran": [0, 0], "answer": 100, "error": "ValueError: the database is away"}
    assert (second["ran"], second["answer"]) == ([], 100)
    assert second["error"] == (
        "DistributedError: rank 0 could not do what every rank waits for: "
        "ValueError: the database is away"
    )
    families = {
        *("mult-dae", "u-autorec", "i-autorec", "cf-nade", "i-cf-nade", "bpr-mf", "biased-mf")
    }
    assert ranks[0].keys() == families
    for name, first in ranks[0].items():
        second = ranks[1][name]
        assert first["digest"] == second["digest"], f"{name}: ranks' parameters differ"
        assert first["metrics"] == second["metrics"], name
        for key, value in first["metrics"].items():
            assert math.isfinite(value)
            assert value == pytest.approx(first["whole_slice"][key], rel=1e-6, abs=1e-9), (
                name,
                key,
            )
