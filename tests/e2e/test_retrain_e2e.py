"""Retraining end to end: real server and worker processes over real Postgres and Redis.

The store is seeded with production ``ease`` v1 and ``mult-vae`` v1 trained
on ML-100K users 1-200 (``tests/e2e/conftest.py``); the server's default
model is ``ease``.
"""

from __future__ import annotations

import signal
import socket
import time
import uuid
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import torch

from models_store import ModelStore
from tests.conftest import age_log
from tests.e2e.conftest import ADMIN_TOKEN, Stack
from training.models import scorer_class
from training.models.base import History

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _wait(predicate: Any, timeout: float, what: str, stack: Stack) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; logs:\n{stack.all_output()[-6000:]}")


def _job(client: httpx.Client, job_id: int) -> dict[str, Any]:
    response = client.get(f"/admin/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _retrain(client: httpx.Client, **body: Any) -> int:
    response = client.post("/admin/retrain", json=body)
    assert response.status_code == 202, response.text
    return int(response.json()["job_id"])


def _recommend(client: httpx.Client, user: str, model: str = "ease", k: int = 10) -> dict[str, Any]:
    response = client.get(f"/v1/users/{user}/recommendations", params={"k": k, "model": model})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _niche_items(stack: Stack, n: int) -> list[str]:
    """``n`` items the base data knows but few base users rated: a taste the log can teach."""
    store = ModelStore(stack.store_dir)
    contents = store.load("ease", "1").contents
    counts = np.bincount(contents.history["indices"], minlength=len(contents.item_ids))
    order = np.argsort(counts, kind="stable")
    rare = [contents.item_ids[i] for i in order if 3 <= counts[i] <= 15]
    return rare[:n]


def _model_topk(store: ModelStore, version: str, user: str, k: int) -> list[str]:
    """Top-k of ``user`` computed straight from the artifact: trained row, no log, no fold-in."""
    loaded = store.load("ease", version)
    c = loaded.contents
    index = c.user_ids.index(user)
    start, end = c.history["indptr"][index], c.history["indptr"][index + 1]
    items, values = c.history["indices"][start:end], c.history["values"][start:end]
    tensors = {name: torch.from_numpy(np.array(t)) for name, t in c.tensors.items()}
    scorer = scorer_class("ease").from_tensors(loaded.manifest.scorer_config, tensors)
    history = History.from_lists([items], [values], len(c.item_ids))
    scores = scorer.score(scorer.user_state(torch.tensor([index]), history))[0]
    scores[torch.as_tensor(items)] = -torch.inf
    return [c.item_ids[i] for i in torch.topk(scores, k).indices.tolist()]


def test_logged_users_become_part_of_the_promoted_model(stack: Stack) -> None:
    """Post interactions for new users, retrain, and the running server answers from the model."""
    stack.serve()
    admin, public = stack.client(), stack.client(token=None)
    assert admin.get("/admin/models").status_code == 200

    # Admin endpoints refuse anyone without the token; the token never reaches a log.
    assert public.post("/admin/retrain", json={"model": "ease"}).status_code == 401
    assert stack.client(token="wrong").get("/admin/jobs").status_code == 401

    rng = np.random.default_rng(7)
    niche = _niche_items(stack, 24)
    users = [f"e2e-{uuid.uuid4().hex[:8]}-{k}" for k in range(20)]
    rows = [
        {"user_id": u, "item_id": i, "rating": 5}
        for u in users
        for i in rng.choice(niche, size=14, replace=False)
    ]
    assert public.post("/v1/interactions", json={"interactions": rows}).json()["accepted"] == 280
    before = _recommend(public, users[0])
    assert before["version"] == "1" and not before["fallback"]  # folded in from the log

    age_log(stack.env["GENREC_DATABASE_URL"])  # logged before the job's commit margin
    job_id = _retrain(admin, model="ease", data="log+base")
    assert _job(admin, job_id)["status"] == "queued"
    worker = stack.worker("--once")
    assert worker.wait(timeout=180) == 0, worker.output()[-4000:]

    job = _job(admin, job_id)
    assert job["status"] == "succeeded", job
    assert (job["attempts"], job["promoted"], job["result_version"]) == (1, True, "2")
    gate = job["gate"]
    assert gate["metric"] == "ndcg@10" and gate["production_version"] == "1"
    assert gate["candidate"] >= gate["production"] * (1 - gate["tolerance"])
    assert job["progress"]["phase"] == "succeeded" and job["log_tail"]

    store = ModelStore(stack.store_dir)
    manifest = store.manifest("ease", "2")
    assert manifest.data.source.endswith("+log") and manifest.training["job_id"] == job_id
    assert manifest.data.n_interactions >= 19_000 + 280
    assert set(users) <= set(store.load("ease", "2").contents.user_ids)
    latest_event = pd.Timestamp.now(tz="UTC")
    assert pd.Timestamp(manifest.data.cutoff) <= latest_event

    # The running server swaps to v2 by itself; the new users are answered from their trained rows.
    _wait(
        lambda: _recommend(public, users[0])["version"] == "2", 20, "the server to serve v2", stack
    )
    for user in users[:3]:
        answer = _recommend(public, user)
        assert (answer["version"], answer["fallback"]) == ("2", False)
        assert [x["item_id"] for x in answer["items"]] == _model_topk(store, "2", user, 10)

    output = stack.all_output()
    assert "GET /readyz" in output or "serving ease version" in output  # logs were captured
    assert ADMIN_TOKEN not in output


def test_worse_model_is_not_promoted_and_rollback_restores_production(stack: Stack) -> None:
    stack.serve()
    admin, public = stack.client(), stack.client(token=None)
    base_user = "1"  # an ML-100K user of the base data
    assert _recommend(public, base_user)["version"] == "1"

    # A huge L2 penalty flattens EASE's item weights: clearly worse on the same slice.
    job_id = _retrain(admin, model="ease", params={"l2": 1e7}, data="log+base", promote="auto")
    assert stack.worker("--once").wait(timeout=180) == 0
    job = _job(admin, job_id)
    assert (job["status"], job["promoted"]) == ("succeeded", False), job
    worse = job["result_version"]
    assert job["gate"]["candidate"] < job["gate"]["production"]
    assert "worse than production v1" in job["gate"]["reason"]
    assert ModelStore(stack.store_dir).manifest("ease", worse).training["gate"] == job["gate"]
    models = {m["name"]: m for m in admin.get("/admin/models").json()["models"]}
    assert models["ease"]["aliases"] == {"production": "1"}

    # An operator promotes it anyway, sees the server switch, and rolls back.
    assert admin.post("/admin/models/ease/promote", json={"version": worse}).status_code == 200
    _wait(
        lambda: _recommend(public, base_user)["version"] == worse, 20, "the promoted version", stack
    )
    rolled = admin.post("/admin/models/ease/rollback").json()
    assert (rolled["version"], rolled["previous"]) == ("1", worse)
    _wait(
        lambda: _recommend(public, base_user)["version"] == "1",
        20,
        "the rolled-back version",
        stack,
    )


def test_killed_worker_job_is_finished_by_another_worker_exactly_once(stack: Stack) -> None:
    stack.serve()
    admin = stack.client()
    lease = {"GENREC_JOB_LEASE_S": "3"}
    # Slow enough to be caught mid-training (about a second per epoch here), quick in all.
    params = {"epochs": 6, "batch_size": 25, "hidden_dim": 300, "latent_dim": 100}
    job_id = _retrain(admin, model="mult-vae", params=params, data="log+base", promote="never")
    first = stack.worker(**lease)

    def mid_training() -> bool:
        job = _job(admin, job_id)
        progress = job["progress"] or {}
        return job["status"] == "running" and 1 <= progress.get("epoch", 0) < params["epochs"]

    _wait(mid_training, 120, "the first worker to be mid-training", stack)
    first.kill(signal.SIGKILL)
    first.popen.wait(10)
    killed_at = _job(admin, job_id)
    assert killed_at["status"] == "running" and killed_at["attempts"] == 1
    assert killed_at["worker_id"].startswith(f"{socket.gethostname()}-{first.pid}-")

    second = stack.worker(**lease)
    done = _wait(
        lambda: (j := _job(admin, job_id))["status"] in ("succeeded", "failed") and j,
        180,
        "the second worker to finish the job",
        stack,
    )
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    assert done["worker_id"].startswith(f"{socket.gethostname()}-{second.pid}-")
    assert done["progress"]["epoch"] == done["progress"]["epochs"] == params["epochs"]
    assert any("attempt 2 of 3" in line for line in done["log_tail"])
    # The killed worker wrote no last line: the one that took over says why it stopped.
    taking_over = f"taking over from attempt 1 (worker {killed_at['worker_id']}): its lease"
    assert any(taking_over in line for line in done["log_tail"]), done["log_tail"]

    store = ModelStore(stack.store_dir)
    of_job = [m for m in store.list_versions("mult-vae") if m.training.get("job_id") == job_id]
    assert [m.version for m in of_job] == [done["result_version"]]  # one version, one completion
    assert of_job[0].training["attempt"] == 2
    assert store.alias_state("mult-vae") == "1"  # promote=never
    assert second.stop() == 0  # SIGTERM: a clean exit between jobs
