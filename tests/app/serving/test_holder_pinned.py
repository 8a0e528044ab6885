"""Pinned versions (``ModelHolder.get_version``) get copy-on-write swaps like production.

An experiment's variant may name a version; the holder keeps it besides production until
``release_pinned``. The catalog extends served versions copy-on-write; for a pinned one it
goes through ``replace_pinned_if_current``, which swaps only while the entry is the same
object, and ``pinned()`` lists what ``get_version`` serves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from app.core.metrics import Metrics
from app.serving.holder import ModelHolder
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


def test_a_pinned_copy_of_the_production_version_is_not_listed_as_served(
    store_dir: Path, train: Callable[..., str]
) -> None:
    """Once production moves to the pinned version, ``get_version`` answers with
    production's object; the pinned copy serves nothing, and nothing extends it."""
    store = ModelStore(store_dir)
    assert train(store, "mult-vae", seed=1, promote=False) == "2"
    holder = ModelHolder(store, torch.device("cpu"), Metrics(), default_model="mult-vae")
    holder.get("mult-vae")
    pinned = holder.get_version("mult-vae", "2")
    store.promote("mult-vae", "2")
    holder.poll_once()  # the hot swap
    production = holder.get("mult-vae")
    assert production.version == "2" and production is not pinned
    assert holder.get_version("mult-vae", "2") is production and holder.pinned() == []
