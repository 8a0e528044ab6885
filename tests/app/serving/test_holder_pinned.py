"""Pinned versions (``ModelHolder.get_version``) get copy-on-write swaps and reloads
like production.

An experiment's variant may name a version; the holder keeps it besides production until
``release_pinned``. The catalog extends served versions copy-on-write; for a pinned one it
goes through ``replace_pinned_if_current``, which swaps only while the entry is the same
object, and ``pinned()`` lists what ``get_version`` serves. The poll that reads the
production version again when its files change reads pinned ones again too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
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
