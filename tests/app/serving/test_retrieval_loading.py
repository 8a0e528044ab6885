"""The retrieval index travels with the version: built at save, opened per GENREC_ANN,
used by the API; models not of inner-product form never get one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import faiss
import pytest
import torch

from app.serving.loaded import LoadedModel, build_loaded_model
from app.serving.retrieval import AnnLoader, auto_uses_index
from models_store import ModelStore
from tests.app.conftest import ClientFactory, embedded_settings


def _loaded(store_dir: Path, name: str) -> LoadedModel:
    store = ModelStore(store_dir)
    return build_loaded_model(store.load(name, store.resolve(name)), torch.device("cpu"))


def test_a_saved_inner_product_version_carries_its_index(trained_store_dir: Path) -> None:
    model = _loaded(trained_store_dir, "mult-vae")
    retrieval = model.manifest.retrieval
    assert retrieval["kind"] == "ivf-flat" and retrieval["n_items"] == model.n_items
    assert model.manifest.files[retrieval["file"]]["bytes"] > 0  # checksummed like the rest
    assert model.index_path is not None and Path(model.index_path).is_file()


@pytest.mark.parametrize("name", ["ease", "popularity"])
def test_other_models_have_no_index_and_never_use_one(trained_store_dir: Path, name: str) -> None:
    model = _loaded(trained_store_dir, name)
    assert model.manifest.retrieval == {} and model.index_path is None
    assert AnnLoader(embedded_settings(ann="on"))(model).ann is None


@pytest.mark.parametrize(
    ("mode", "auto_items", "used"),
    [("on", 100_000, True), ("off", 1, False), ("auto", 100_000, False), ("auto", 10, True)],
)
def test_the_setting_decides_whether_the_index_is_opened(
    trained_store_dir: Path, mode: str, auto_items: int, used: bool
) -> None:
    model = _loaded(trained_store_dir, "mult-vae")  # 60 items
    settings = embedded_settings(ann=mode, ann_auto_items=auto_items)
    opened = AnnLoader(settings)(model)
    assert (opened.ann is not None) is used
    if used:
        assert opened.ann is not None and opened.ann.index.ntotal == model.n_items


@pytest.mark.parametrize(
    ("n_items", "device", "used"),
    [(100_000, "cpu", True), (99_999, "cpu", False), (1_000_000, "cuda", False)],
)
def test_auto_uses_the_index_for_large_catalogs_on_the_cpu_only(
    n_items: int, device: str, used: bool
) -> None:
    # On a GPU the exact product served 1M items as fast as 1,682 (docs/performance.md).
    assert auto_uses_index(n_items, torch.device(device), 100_000) is used


def test_a_version_without_an_index_is_served_exactly(trained_store_dir: Path) -> None:
    model = dataclasses.replace(_loaded(trained_store_dir, "mult-vae"), index_path=None)
    assert AnnLoader(embedded_settings(ann="on"))(model).ann is None


def test_the_api_answers_alike_with_the_index_and_counts_it(make_client: ClientFactory) -> None:
    # 60 items: one IVF list, so the index proposes every item and the lists must be equal.
    exact, approximate = make_client(ann="off"), make_client(ann="on")
    for user in ("u1", "u2", "u7"):
        path = f"/v1/users/{user}/recommendations?k=10&exclude=3&exclude=4"
        a, e = approximate.get(path), exact.get(path)
        assert a.status_code == e.status_code == 200
        assert [i["item_id"] for i in a.json()["items"]] == [
            i["item_id"] for i in e.json()["items"]
        ]
        assert not {"3", "4"} & {i["item_id"] for i in a.json()["items"]}
    metrics = approximate.get("/metrics").text
    assert 'genrec_ann_rows_total{model="mult-vae"} 3.0' in metrics
    assert "genrec_ann_rows_total{" not in exact.get("/metrics").text


def test_the_similar_items_index_opens_with_the_retrieval_index(trained_store_dir: Path) -> None:
    model = _loaded(trained_store_dir, "mult-vae")
    similar = model.manifest.retrieval["similar"]
    assert similar["file"] == "similar.faiss" and similar["n_items"] == model.n_items
    assert model.similar_index_path is not None and Path(model.similar_index_path).is_file()
    opened = AnnLoader(embedded_settings(ann="on"))(model)
    assert opened.similar_ann is not None
    assert opened.similar_ann.retrieval.index.ntotal == model.n_items
    assert opened.similar_ann.source is model.scorer
    assert AnnLoader(embedded_settings(ann="off"))(model).similar_ann is None
    # Each index has its own setting over its manifest's nprobe.
    tuned = AnnLoader(embedded_settings(ann="on", ann_similar_nprobe=1))(model)
    assert tuned.similar_ann is not None and tuned.ann is not None
    assert faiss.extract_index_ivf(tuned.similar_ann.retrieval.index).nprobe == 1
    assert tuned.ann.nprobe == model.manifest.retrieval["nprobe"]
    # A version indexed before similar-items indexes existed: recommendations only.
    without = dataclasses.replace(model, similar_index_path=None)
    older = AnnLoader(embedded_settings(ann="on"))(without)
    assert older.ann is not None and older.similar_ann is None
