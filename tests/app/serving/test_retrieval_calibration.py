"""GENREC_ANN=auto reads the retrieval index's calibration (the manifest's
``retrieval.calibration``, measured on sampled users at build time): an index that
reaches the target with few lists serves, one that needs most of its lists is left
closed and every list is exact (logged); ``on`` opens it with a warning; a version
built before calibration opens as it always did."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from app.serving.batcher import RankJob, rank_batch, rank_exact
from app.serving.loaded import LoadedModel, build_loaded_model
from app.serving.retrieval import AnnLoader, calibrated_recall, calibration_problem
from models_store import ModelStore
from tests.app.conftest import embedded_settings
from tests.app.serving.ann_catalog import N_ITEMS, save_with_users
from training.ann import default_nprobe
from training.models.base import History

#: The catalogs have 3,000 items: below the default GENREC_ANN_AUTO_ITEMS.
AUTO = {"ann": "auto", "ann_auto_items": 1_000}
LOGGER = "app.serving.retrieval"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelStore, str, str]:
    """One store: a clustered catalog's version and an iid catalog's, each saved as a
    trained version is (its retrieval index calibrated on its 120 users)."""
    store = ModelStore(tmp_path_factory.mktemp("calibrated"))
    return store, save_with_users(store, iid=False), save_with_users(store, iid=True)


def _loaded(store: ModelStore, version: str) -> LoadedModel:
    return build_loaded_model(store.load("bpr-mf", version), torch.device("cpu"))


def _jobs(model: LoadedModel, users: range) -> list[RankJob]:
    """Top-100 jobs of training users, their seen items masked, as the API builds them."""
    jobs = []
    for user in users:
        seen = model.history[user].indices.astype(np.int64)
        history = History.from_lists([seen], None, model.n_items)
        with torch.inference_mode():
            state = model.scorer.user_state(torch.tensor([user]), history)
        jobs.append(RankJob(state=state, banned=seen, allowed=None, k=100))
    return jobs


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


def test_auto_uses_the_index_of_a_catalog_that_calibrates_to_the_default(
    store: tuple[ModelStore, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    model = _loaded(store[0], store[1])
    retrieval = model.manifest.retrieval
    assert retrieval["nprobe"] == default_nprobe(retrieval["nlist"])
    assert calibration_problem(retrieval) is None
    with caplog.at_level(logging.INFO, logger=LOGGER):
        opened = AnnLoader(embedded_settings(**AUTO))(model)
    assert opened.ann is not None and opened.ann.nprobe == retrieval["nprobe"]
    recall = retrieval["calibration"]["recall"]
    assert any(
        f"calibrated Recall@100 {recall:.3f}" in m and "retrieval index on" in m
        for m in _messages(caplog, logging.INFO)
    )
    assert not _messages(caplog, logging.WARNING)
    ranked = rank_batch(opened, _jobs(opened, range(20)))
    assert {r.retrieval for r in ranked} == {"ann"}  # served from the index


def test_auto_scores_an_iid_catalog_exactly_and_says_why(
    store: tuple[ModelStore, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    model = _loaded(store[0], store[2])
    retrieval = model.manifest.retrieval
    nprobe, nlist = retrieval["nprobe"], retrieval["nlist"]
    assert nprobe > nlist / 8 and nprobe > default_nprobe(nlist)  # most of its lists
    with caplog.at_level(logging.INFO, logger=LOGGER):
        opened = AnnLoader(embedded_settings(**AUTO))(model)
    assert opened.ann is None
    (line,) = _messages(caplog, logging.WARNING)
    assert "retrieval index not used (GENREC_ANN=auto), users' lists are exact" in line
    assert (
        f"its calibration needs {nprobe} of {nlist} lists to find 95% of 120 sampled users'" in line
    )
    assert "more than 1/8 of its lists" in line
    default = default_nprobe(nlist)
    assert f"{retrieval['calibration']['tried'][str(default)]:.3f} with {default})" in line
    # Every list is the exact path's: the same items and scores, ranked exactly.
    jobs = _jobs(opened, range(20))
    ranked, exact = rank_batch(opened, jobs), rank_exact(opened, jobs)
    assert {r.retrieval for r in ranked} == {"exact"}
    for got, want in zip(ranked, exact, strict=True):
        np.testing.assert_array_equal(got.items, want.items)
    # The similar-items index keeps its own calibration and setting.
    assert opened.similar_ann is not None


def test_on_opens_an_index_that_auto_refuses_with_a_warning(
    store: tuple[ModelStore, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    model = _loaded(store[0], store[2])
    calibration = model.manifest.retrieval["calibration"]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        opened = AnnLoader(embedded_settings(ann="on"))(model)
    assert opened.ann is not None
    (line,) = _messages(caplog, logging.WARNING)
    assert "retrieval index on (GENREC_ANN=on) although its calibration needs" in line
    assert f"calibrated Recall@100 {calibration['recall']:.3f}" in line
    # With the server's own breadth, the recall the calibration measured there.
    with caplog.at_level(logging.INFO, logger=LOGGER):
        caplog.clear()
        AnnLoader(embedded_settings(ann="on", ann_nprobe=16))(model)
    (line,) = _messages(caplog, logging.WARNING)
    assert f"nprobe=16, calibrated Recall@100 {calibration['tried']['16']:.3f}" in line
    ranked = rank_batch(opened, _jobs(opened, range(5)))
    assert {r.retrieval for r in ranked} == {"ann"}


def test_a_version_indexed_before_calibration_opens_as_before(
    store: tuple[ModelStore, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    model = _loaded(store[0], store[2])
    older = {k: v for k, v in model.manifest.retrieval.items() if k != "calibration"}
    model = dataclasses.replace(
        model, manifest=dataclasses.replace(model.manifest, retrieval=older)
    )
    with caplog.at_level(logging.INFO, logger=LOGGER):
        opened = AnnLoader(embedded_settings(**AUTO))(model)
    assert opened.ann is not None and opened.ann.index.ntotal == N_ITEMS
    assert any("recall not measured" in m for m in _messages(caplog, logging.INFO))
    assert not _messages(caplog, logging.WARNING)


def test_a_calibration_below_the_target_is_refused_even_with_few_lists() -> None:
    section = {
        "nlist": 1000,
        "nprobe": 1000,
        "calibration": {"target_recall": 0.95, "recall": 0.9, "queries": 200, "k": 100},
    }
    problem = calibration_problem(section)
    assert problem is not None and "below the target 0.95" in problem
    fine = {**section, "nprobe": 16, "calibration": {**section["calibration"], "recall": 0.97}}
    assert calibration_problem(fine) is None
    assert calibration_problem({"nlist": 1000, "nprobe": 16}) is None  # no calibration
    broken = {**section, "calibration": {"recall": "x"}}
    assert "unreadable" in (calibration_problem(broken) or "")
    odd = {**fine, "nprobe": 1000, "calibration": {**fine["calibration"], "tried": {"16": "x"}}}
    assert "unreadable" in (calibration_problem(odd) or "")  # a hand-edited manifest: no crash
    assert calibrated_recall(odd, 16) == "recall unreadable"
