"""Pinned versions (``ModelHolder.get_version``) get copy-on-write swaps and reloads
like production.

An experiment's variant may name a version; the holder keeps it besides production until
``release_pinned``. The catalog extends served versions copy-on-write; for a pinned one it
goes through ``replace_pinned_if_current``, which swaps only while the entry is the same
object, and ``pinned()`` lists what ``get_version`` serves. The poll that reads the
production version again when its files change reads pinned ones again too. One
version is one object, whoever uses it: production, a pin, or both.
"""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from app.core.metrics import Metrics
from app.serving.holder import ModelHolder, ModelUnavailable
from app.serving.loaded import LoadedModel
from models_store import ModelStore


def test_a_pinned_version_is_swapped_only_while_its_entry_is_the_same_object(
    store_dir: Path, train: Callable[..., str]
) -> None:
    store = ModelStore(store_dir)
    assert train(store, "mult-vae", seed=1, promote=False) == "2"
    holder = ModelHolder(store, torch.device("cpu"), Metrics(), default_model="mult-vae")
    production = holder.get("mult-vae")
    pinned = holder.get_version("mult-vae", "2")
    assert [model is pinned for model in holder.pinned()] == [True]

    extended = dataclasses.replace(pinned, extension=1)
    assert holder.replace_pinned_if_current(pinned, extended)
    assert holder.get_version("mult-vae", "2") is extended
    assert not holder.replace_pinned_if_current(pinned, dataclasses.replace(pinned))  # stale
    assert holder.get_version("mult-vae", "2") is extended
    # Production is not a pinned entry: its swaps go through replace_if_current.
    assert not holder.replace_pinned_if_current(production, dataclasses.replace(production))
    assert holder.get("mult-vae") is production

    holder.release_pinned(set())  # the experiment ended
    assert holder.pinned() == []
    assert not holder.replace_pinned_if_current(extended, dataclasses.replace(extended))


class _Loads:
    """A load listener that keeps a weak reference to every version the holder reads:
    how many are still in memory is how many of them are alive (``gc.get_objects`` does
    not see them: the holder freezes them out of the collector, ``freeze_long_lived``)."""

    def __init__(self) -> None:
        self.read: list[weakref.ref[LoadedModel]] = []

    def __call__(self, model: LoadedModel) -> LoadedModel:
        self.read.append(weakref.ref(model))
        return model

    def in_memory(self, version: str) -> int:
        gc.collect()
        return sum(1 for ref in self.read if (model := ref()) and model.version == version)


def test_a_pinned_version_that_becomes_production_is_loaded_once(
    store_dir: Path, train: Callable[..., str]
) -> None:
    """Promoting the version an experiment pins: the poll loaded it a second time for
    production, and the pinned copy stayed in memory beside it until the experiment
    ended. Production takes the pinned object instead; the old production is freed."""
    from training.ann import index_version

    store = ModelStore(store_dir)
    assert train(store, "mult-vae", seed=1, promote=False) == "2"
    holder = ModelHolder(store, torch.device("cpu"), Metrics(), default_model="mult-vae")
    loads = _Loads()
    holder.add_load_listener(loads)
    holder.get("mult-vae")
    pinned = holder.get_version("mult-vae", "2")
    store.promote("mult-vae", "2")
    holder.poll_once()  # the hot swap
    assert holder.get("mult-vae") is pinned and holder.get_version("mult-vae", "2") is pinned
    assert len(loads.read) == 2 and loads.in_memory("2") == 1
    assert holder.pinned() == []  # served as production: the catalog extends it once
    assert loads.in_memory("1") == 0  # nobody uses it
    # A copy-on-write change, and a reload of changed files, reach both users at once.
    extended = dataclasses.replace(pinned, extension=1)
    assert holder.replace_pinned_if_current(pinned, extended)
    assert holder.get("mult-vae") is extended and holder.get_version("mult-vae", "2") is extended
    index_version(store, "mult-vae", "2", nprobe=1, similar_nprobe=1)
    holder.poll_once()
    again = holder.get("mult-vae")
    assert again.manifest.retrieval["nprobe"] == 1 and holder.get_version("mult-vae", "2") is again
    del pinned, extended
    assert loads.in_memory("2") == 1
    holder.release_pinned(set())  # the experiment ended: production keeps it
    assert holder.get("mult-vae") is again


def test_a_production_version_an_experiment_pins_stays_loaded_once_after_a_promotion(
    store_dir: Path, train: Callable[..., str]
) -> None:
    """The variant pins the version production serves (one object); production moves on.
    The pin keeps that object: it was loaded again on the next request, and a version is
    freed only when neither production nor a pin uses it."""
    store = ModelStore(store_dir)
    holder = ModelHolder(store, torch.device("cpu"), Metrics(), default_model="mult-vae")
    loads = _Loads()
    holder.add_load_listener(loads)
    production = holder.get("mult-vae")
    assert holder.get_version("mult-vae", "1") is production
    assert train(store, "mult-vae", seed=1) == "2"  # promoted
    holder.poll_once()
    assert holder.get("mult-vae").version == "2"
    assert holder.get_version("mult-vae", "1") is production
    assert [model is production for model in holder.pinned()] == [True]
    assert len(loads.read) == 2 and loads.in_memory("1") == 1
    del production
    holder.release_pinned(set())  # the experiment ended
    assert loads.in_memory("1") == 0 and loads.in_memory("2") == 1


def test_a_pinned_version_whose_files_change_is_loaded_again_by_the_poll(
    store_dir: Path, train: Callable[..., str]
) -> None:
    """``genrec models index`` on a version an experiment pins: the poll that reloads the
    production version when its files change did not look at pinned ones, so the variant
    served without the new index until the experiment ended or the server restarted."""
    from training.ann import index_version

    store = ModelStore(store_dir)
    assert train(store, "mult-vae", seed=1, promote=False) == "2"
    holder = ModelHolder(store, torch.device("cpu"), Metrics(), default_model="mult-vae")
    holder.get("mult-vae")
    pinned = holder.get_version("mult-vae", "2")
    index_version(store, "mult-vae", "2", nprobe=1, similar_nprobe=1)
    holder.poll_once()
    again = holder.get_version("mult-vae", "2")
    assert again is not pinned and again.version == "2"
    assert again.manifest.retrieval["nprobe"] == 1 and again.index_path is not None
    assert [model is again for model in holder.pinned()] == [True]
    holder.poll_once()  # nothing changed since: the same object stays
    assert holder.get_version("mult-vae", "2") is again


def test_a_pinned_version_deleted_from_the_store_keeps_serving_and_is_refused_once(
    store_dir: Path, train: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    """``genrec models delete`` refuses a version the running experiment pins, but the
    store's files can still go (a delete before the experiment started on another
    replica, a hand-removed folder): the reload is refused, logged once, and the copy
    read before keeps serving the variant, as a production version's does."""
    store = ModelStore(store_dir)
    assert train(store, "mult-vae", seed=1, promote=False) == "2"
    holder = ModelHolder(store, torch.device("cpu"), Metrics(), default_model="mult-vae")
    holder.get("mult-vae")
    pinned = holder.get_version("mult-vae", "2")
    store.delete_version("mult-vae", "2")
    holder.poll_once()
    holder.poll_once()  # the files have not changed since the refusal: not read again
    assert holder.get_version("mult-vae", "2") is pinned
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and "mult-vae version 2 refused" in refused[0]


def test_a_request_that_asks_for_a_pin_after_its_experiment_ended_pins_nothing(
    store_dir: Path, train: Callable[..., str]
) -> None:
    """A request assigned to a variant just before the experiment ended asks for the
    pinned version just after ``release_pinned``: it read the version again and pinned
    it until the next experiment change (for good, when none came). Now it is refused
    (the request falls back to the default model) and nothing stays in memory."""
    store = ModelStore(store_dir)
    assert train(store, "mult-vae", seed=1, promote=False) == "2"
    holder = ModelHolder(store, torch.device("cpu"), Metrics(), default_model="mult-vae")
    loads = _Loads()
    holder.add_load_listener(loads)
    production = holder.get("mult-vae")
    holder.release_pinned({("mult-vae", "2"), ("mult-vae", "1")})  # the experiment started
    holder.get_version("mult-vae", "2")
    holder.release_pinned(set())  # it ended
    with pytest.raises(ModelUnavailable, match="no running experiment pins it"):
        holder.get_version("mult-vae", "2")
    assert holder.get_version("mult-vae", "1") is production  # served, not pinned
    assert holder.pinned() == [] and loads.in_memory("2") == 0
    assert train(store, "mult-vae", seed=2) == "3"  # promoted: version 1 goes
    holder.poll_once()
    del production
    assert loads.in_memory("1") == 0


def test_a_pin_refused_at_its_first_read_is_read_again_once_its_files_change(
    store_dir: Path, train: Callable[..., str]
) -> None:
    """A variant's version whose first read was refused (a file damaged in a copy) stayed
    refused until the next experiment change, even once its files were put right: the
    refusal stands only while the files are as they were when it was refused."""
    store = ModelStore(store_dir)
    assert train(store, "mult-vae", seed=1, promote=False) == "2"
    holder = ModelHolder(store, torch.device("cpu"), Metrics(), default_model="mult-vae")
    holder.get("mult-vae")
    tensors = store_dir / "mult-vae" / "versions" / "2" / "tensors.safetensors"
    good = tensors.read_bytes()
    tensors.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelUnavailable, match="mult-vae version 2 refused"):
        holder.get_version("mult-vae", "2")
    with pytest.raises(ModelUnavailable, match="mult-vae version 2 refused"):
        holder.get_version("mult-vae", "2")  # the same files: the refusal stands
    tensors.write_bytes(good)  # put right
    assert holder.get_version("mult-vae", "2").version == "2"
