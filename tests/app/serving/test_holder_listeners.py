"""Model holder load listeners: several, in order, each sees what the previous returned."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from app.core.metrics import Metrics
from app.serving.holder import ModelHolder
from app.serving.loaded import LoadedModel
from models_store import ModelStore


class Recorder:
    """A listener that notes what it saw and returns a copy one extension further."""

    def __init__(self, name: str, calls: list[tuple[str, str, int]]) -> None:
        self.name = name
        self.calls = calls

    def on_load(self, model: LoadedModel) -> LoadedModel:
        self.calls.append((self.name, model.version, model.extension))
        return dataclasses.replace(model, extension=model.extension + 1)


def test_several_load_listeners_run_in_order_and_can_be_removed(
    store_dir: Path, train: Callable[..., str]
) -> None:
    store = ModelStore(store_dir)
    holder = ModelHolder(store, torch.device("cpu"), Metrics(), default_model="mult-vae")
    calls: list[tuple[str, str, int]] = []
    first, second = Recorder("first", calls), Recorder("second", calls)
    holder.add_load_listener(first.on_load)
    holder.add_load_listener(second.on_load)

    served = holder.get("mult-vae")
    # The second listener got the first one's copy; the holder serves the last copy.
    assert calls == [("first", "1", 0), ("second", "1", 1)]
    assert served.extension == 2 and holder.get("mult-vae") is served

    holder.remove_load_listener(first.on_load)  # a fresh bound method, equal to the added one
    holder.remove_load_listener(first.on_load)  # not registered any more: no-op
    assert train(store, "mult-vae", seed=1) == "2"
    holder.poll_once()  # the hot swap loads version 2
    assert holder.get("mult-vae").version == "2"
    assert calls[2:] == [("second", "2", 0)]
    assert holder.get("mult-vae").extension == 1


def test_a_holder_without_listeners_installs_the_version_as_loaded(store_dir: Path) -> None:
    holder = ModelHolder(
        ModelStore(store_dir), torch.device("cpu"), Metrics(), default_model="mult-vae"
    )
    model = holder.get("mult-vae")
    assert (model.version, model.extension) == ("1", 0)


def test_a_listener_whose_result_went_stale_before_the_install_runs_again(
    store_dir: Path, train: Callable[..., str]
) -> None:
    """A listener's check says, under the install lock, that what it returned is no longer
    what it would return (the catalog changed meanwhile): every listener runs again on the
    version as read, and the holder installs the second run's copy, not the stale one."""
    store = ModelStore(store_dir)
    holder = ModelHolder(store, torch.device("cpu"), Metrics(), default_model="mult-vae")
    calls: list[tuple[str, str, int]] = []
    first, second = Recorder("first", calls), Recorder("second", calls)
    checked: list[int] = []

    def current(model: LoadedModel) -> bool:  # stale once, at the first install
        checked.append(model.extension)
        return len(checked) > 1

    holder.add_load_listener(first.on_load)
    holder.add_load_listener(second.on_load, current)
    served = holder.get("mult-vae")
    assert calls == [("first", "1", 0), ("second", "1", 1)] * 2  # each run from the read version
    assert checked == [2, 2] and served.extension == 2 and holder.get("mult-vae") is served

    holder.remove_load_listener(second.on_load)  # its check goes with it
    assert train(store, "mult-vae", seed=1) == "2"
    holder.poll_once()
    assert holder.get("mult-vae").version == "2" and checked == [2, 2]
