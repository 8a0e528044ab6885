"""A new item served from its text, end to end: ``genrec serve`` over real Postgres + Redis.

Production model: a tiny ConvMF trained on ``tests/app/catalog_data`` (item
text decides taste; the held-out items were never in training). An item is
PUT with a space plot: it must appear in a space fan's recommendations,
flagged ``from_text``, above the romance items they have not seen, and get a
rating prediction (an id in no catalog gets the flagged baseline instead). A second item arrives through ``genrec items import`` (a
separate process writing to the database): the running server picks it up
at start-up or at its reload poll.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from app.core.db import upgrade_database
from models_store import ModelStore
from tests.app.catalog_data import TINY_CONVMF, text_ratings
from tests.e2e.conftest import ADMIN_TOKEN, Proc, Stack
from training.pipeline import train_and_save

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def convmf_stack(postgres_url: str, redis_url: str, redis_namespace: str, tmp_path: Path) -> Any:
    torch.set_num_threads(1)
    data = text_ratings(seed=0)
    store_dir = tmp_path / "store"
    train_and_save(
        ModelStore(store_dir), "convmf", data.train, dict(TINY_CONVMF), source="t", promote=True
    )
    upgrade_database(postgres_url)
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENREC_")},
        "GENREC_DATABASE_URL": postgres_url,
        "GENREC_REDIS_URL": redis_url,
        "GENREC_CACHE_NAMESPACE": redis_namespace,
        "GENREC_STORE_DIR": str(store_dir),
        "GENREC_ADMIN_TOKEN": ADMIN_TOKEN,
        "GENREC_DEFAULT_MODEL": "convmf",
        "GENREC_RELOAD_INTERVAL_S": "0.5",
        "OMP_NUM_THREADS": "1",
    }
    stack = Stack(env=env, store_dir=store_dir, logs=logs)
    try:
        yield stack, data
    finally:
        for proc in stack.procs:
            proc.kill()
        for proc in stack.procs:
            proc.popen.wait(10)


def test_a_new_item_is_served_from_its_text(convmf_stack: Any, tmp_path: Path) -> None:
    stack, data = convmf_stack
    (put_id, (topic, put_text)), (import_id, (_, import_text)) = list(data.held_out.items())[:2]
    # Ids unique to this run: the session's Postgres database is shared by other tests.
    put_id, import_id = f"{put_id}-{tmp_path.name}", f"{import_id}-{tmp_path.name}"
    fan = f"u{topic:02d}"  # user n loves topic n % 2
    # The import runs beside the server's start-up (it saves time); whether the server
    # reads its row at start-up or at a reload poll, it only ever sees it in the database.
    importer = _start_import(stack, tmp_path, import_id, import_text)
    stack.serve()
    with stack.client() as client:
        put = client.put(f"/v1/items/{put_id}", json={"title": "New", "text": put_text})
        assert put.status_code == 201, put.text
        assert put.json()["serving"] == [{"model": "convmf", "version": "1", "from_text": True}]

        recs = client.get(f"/v1/users/{fan}/recommendations", params={"k": 50}).json()
        ranked = [it["item_id"] for it in recs["items"]]
        assert put_id in ranked, recs
        assert recs["items"][ranked.index(put_id)]["from_text"] is True
        other = [i for i in ranked if i != put_id and _topic(i) != topic]
        assert other and all(ranked.index(put_id) < ranked.index(i) for i in other)
        # Taste is a population statement: one user's vector of a tiny model is noisy, so the
        # new item's mean predicted rating over ten users' fans is compared with its haters'.
        fans, haters = _users_by_taste(topic, n=10)
        assert _mean_rating(client, fans, put_id) > _mean_rating(client, haters, put_id)

        assert importer.wait(90) == 0, importer.output()
        assert "1 new" in importer.output()
        # Until the server has read the import, the item is unknown: answered with the
        # flagged baseline, like an id that is in no catalog (issue 16.9).
        never = f"never-{tmp_path.name}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = client.post(
                "/v1/predictions", json={"user_id": fan, "item_ids": [import_id, never]}
            )
            assert r.status_code == 200, (r.text, stack.all_output()[-4000:])
            if not r.json()["predictions"][0]["fallback"]:
                break
            time.sleep(0.2)
        imported, unknown = r.json()["predictions"]
        assert (imported["from_text"], imported["fallback"]) == (True, False), r.json()
        assert (unknown["from_text"], unknown["fallback"]) == (False, True)
        assert r.json()["unknown_items"] == [never]
    assert "Traceback" not in stack.all_output()


def _users_by_taste(topic: int, n: int) -> tuple[list[str], list[str]]:
    """Users ``u00``..``u{n-1}`` split into those who love ``topic`` and those who do not."""
    users = [f"u{u:02d}" for u in range(n)]
    return [u for u in users if int(u[1:]) % 2 == topic], [
        u for u in users if int(u[1:]) % 2 != topic
    ]


def _mean_rating(client: httpx.Client, users: list[str], item_id: str) -> float:
    ratings = []
    for user in users:
        r = client.post("/v1/predictions", json={"user_id": user, "item_ids": [item_id]})
        assert r.status_code == 200, r.text
        (prediction,) = r.json()["predictions"]
        assert prediction["from_text"] is True and prediction["fallback"] is False
        ratings.append(float(prediction["rating"]))
    return sum(ratings) / len(ratings)


def _start_import(stack: Stack, tmp_path: Path, item_id: str, text: str) -> Proc:
    """``genrec items import`` in its own process: the server only sees the database row."""
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"item_id": item_id, "title": "Imported", "text": text}) + "\n")
    return stack.start("import", "items", "import", str(path))


def _topic(item_id: str) -> int:
    """Topic of ``i{n}`` (``i{n}-{suffix}`` for this run's new items): n % 2."""
    return int(item_id[1:].split("-")[0]) % 2
