"""``genrec models index`` on the version an experiment's variant pins, while it runs.

The production version was read again when its files changed; the pinned one was not,
and the variant kept serving without the new index until the experiment ended or the
server restarted. Read again, it must also be what scores the variant's lists: the
micro-batcher of a version's revision kept scoring the object it was made for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.serving import batcher as batcher_module
from app.serving.batcher import Ranked, RankJob
from app.serving.loaded import LoadedModel
from models_store import ModelStore

TOKEN = "pinned-reload-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXPERIMENT = {
    "name": "mult-vae-versions",
    "variants": [
        {"name": "control", "model": "mult-vae", "weight": 1},
        {"name": "pinned", "model": "mult-vae", "version": "2", "weight": 1},
    ],
}


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_an_index_built_for_a_pinned_version_reaches_the_variant_s_lists(
    make_client: Callable[..., TestClient],
    store_dir: Path,
    train: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from training.ann import index_version

    store = ModelStore(store_dir)
    assert train(store, "mult-vae", seed=1, promote=False) == "2"
    client = make_client(ann="on", admin_token=TOKEN, default_model="mult-vae")
    holder = client.app.state.services.holder  # type: ignore[attr-defined]
    scored: list[tuple[str, int | None]] = []  # (version, its index's nprobe) per batch
    real = batcher_module.process_batch

    def recording(model: LoadedModel, jobs: Sequence[RankJob], resolve: Any) -> list[Ranked]:
        scored.append((model.version, model.ann.nprobe if model.ann is not None else None))
        return real(model, jobs, resolve)

    monkeypatch.setattr(batcher_module, "process_batch", recording)
    created = client.post("/admin/experiments", json=EXPERIMENT, headers=AUTH)
    assert created.status_code == 201, created.text
    answers = {u: client.get(f"/v1/users/{u}/recommendations") for u in ("u0", "u1", "u2", "u3")}
    assert all(r.status_code == 200 for r in answers.values())
    pinned_user = next(u for u, r in answers.items() if r.json()["variant"] == "pinned")
    before = holder.get_version("mult-vae", "2")
    assert before.ann is not None and before.ann.nprobe != 2
    scored.clear()
    assert client.get(f"/v1/users/{pinned_user}/recommendations").status_code == 200
    assert scored == [("2", before.ann.nprobe)]  # its batcher is made, with the copy read

    index_version(store, "mult-vae", "2", nlist=2, nprobe=2, similar_nprobe=2)
    _wait_for(
        lambda: (m := holder.get_version("mult-vae", "2")).ann is not None and m.ann.nprobe == 2
    )
    scored.clear()
    again = client.get(f"/v1/users/{pinned_user}/recommendations")
    assert again.status_code == 200 and again.json()["version"] == "2"
    assert scored == [("2", 2)]  # the rebuilt index, not the copy read before
