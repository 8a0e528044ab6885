"""``Batchers``: one micro-batcher per served model object, retired once not served.

It used to key batchers by (name, revision) and retire the others of a name when a
production batcher was made: a version read again after its files changed (same
revision) kept being scored by the old object, and a pinned version's batcher (with
the model it holds) outlived its experiment.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import numpy as np
import torch

from app.core.metrics import Metrics
from app.serving.batcher import Batchers, Ranked, RankJob
from tests.app.serving.test_batcher import _model


class _Holder:
    """The two things the batchers ask the model holder, set by hand."""

    def __init__(self, *served: object) -> None:
        self.generation = 0
        self.served = list(served)

    def serves(self, model: object) -> bool:
        return any(model is held for held in self.served)

    def set(self, *served: object) -> None:
        self.served = list(served)
        self.generation += 1


def _job() -> RankJob:
    return RankJob(torch.tensor([[1.0, 0.0]]), np.zeros(0, dtype=np.int64), None, k=2)


class _Model:
    """``_model()``'s fields on an object that a weak reference can watch."""

    def __init__(self, name: str = "linear", version: str = "1") -> None:
        self.__dict__.update(vars(_model()))
        self.name, self.version, self.revision = name, version, version


def test_a_version_read_again_with_the_same_revision_is_scored_by_the_new_object() -> None:
    """``genrec models index`` on the served version: the holder reads it again (same
    version, same revision); the batcher of that revision scored the old object, without
    the index, until a catalog change or a promotion."""
    old, new = _Model(), _Model()
    holder = _Holder(old)

    async def scenario() -> tuple[object, object, bool]:
        batchers = Batchers(Metrics(), 64, 0.0, holder)
        first = batchers.for_model(old)  # type: ignore[arg-type]
        holder.set(new)  # the reload
        second = batchers.for_model(new)  # type: ignore[arg-type]
        await asyncio.gather(*batchers._retiring)
        await batchers.close()
        return first.model, second.model, first._closing

    first, second, retired = asyncio.run(scenario())
    assert first is old and second is new and retired


def test_a_pinned_version_s_batcher_drains_and_goes_when_its_experiment_ends() -> None:
    """The experiment ends while a batch for its pinned version is queued: the job is
    answered, then the batcher and the model it held are gone (they stayed for the
    server's life when the pin was of a model production did not serve)."""
    production, pinned = _Model("mult-vae"), _Model("convmf", "2")
    holder = _Holder(production, pinned)
    gone = weakref.ref(pinned)

    async def scenario(pinned: _Model) -> tuple[Ranked, int]:
        batchers = Batchers(Metrics(), 64, 10.0, holder)
        queued = asyncio.ensure_future(batchers.for_model(pinned).rank(_job()))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # queued; the 10 s window runs
        holder.set(production)  # the experiment ended: release_pinned
        batchers.for_model(production)  # type: ignore[arg-type]  # the next request
        answered = await asyncio.wait_for(queued, timeout=30)  # drained, not waited out
        await asyncio.gather(*batchers._retiring)
        left = len(batchers._by_model)
        await batchers.close()
        return answered, left

    answered, left = asyncio.run(scenario(pinned))
    assert answered.items.tolist() == [0, 2] and left == 1
    del pinned
    gc.collect()
    assert gone() is None


def test_a_request_holding_a_released_version_is_answered_and_its_batcher_retires() -> None:
    production, released = _Model("mult-vae"), _Model("convmf", "2")
    holder = _Holder(production)

    async def scenario() -> tuple[Ranked, int]:
        batchers = Batchers(Metrics(), 64, 0.0, holder)
        batchers.for_model(production)  # type: ignore[arg-type]
        answered = await batchers.for_model(released).rank(_job())  # type: ignore[arg-type]
        batchers.for_model(production)  # type: ignore[arg-type]  # the next request sweeps
        await asyncio.gather(*batchers._retiring)
        left = len(batchers._by_model)
        await batchers.close()
        return answered, left

    answered, left = asyncio.run(scenario())
    assert answered.items.tolist() == [0, 2] and left == 1
