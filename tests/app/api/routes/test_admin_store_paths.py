"""No admin answer names where the model store lives on the server's disk.

The store's errors name the file involved, for an operator at the command line
(``models_store.errors``); over HTTP the path told a token holder (or a leaked
token) the server's filesystem layout. Answers name places relative to the store.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ClientFactory
from tests.app.dashboard.login import log_in

TOKEN = "store-paths-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin(make_client: ClientFactory) -> TestClient:
    return make_client(admin_token=TOKEN)


def _hides_the_store(text: str, store_dir: Path) -> None:
    for form in {str(store_dir), os.path.realpath(store_dir), str(store_dir.parent)}:
        assert form not in text, text


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        (
            "post",
            "/admin/models/convmf/promote",
            {"version": 1},
            404,
            "no versions in the model store",
        ),
        ("post", "/admin/models/mult-vae/promote", {"version": 7}, 404, "has no version 7"),
        ("post", "/admin/models/convmf/rollback", None, 404, "no versions in the model store"),
        ("post", "/admin/models/mult-dae/rollback", None, 404, "not set"),
        ("get", "/admin/models/mult-vae", None, 404, "Not Found"),
        (
            "post",
            "/admin/experiments",
            {"name": "e", "variants": [{"name": "a", "model": "convmf"}, {"name": "b"}]},
            None,
            "",
        ),
    ],
)
def test_not_found_answers_do_not_name_the_store_path(
    method: str,
    path: str,
    body: object,
    status: int | None,
    says: str,
    admin: TestClient,
    store_dir: Path,
) -> None:
    response = admin.request(method.upper(), path, json=body, headers=AUTH)
    if status is not None:
        assert response.status_code == status, response.text
    assert says in response.text
    _hides_the_store(response.text, store_dir)


def test_a_corrupt_version_is_refused_naming_its_file_in_the_store(
    admin: TestClient, store_dir: Path
) -> None:
    (store_dir / "mult-dae" / "versions" / "1" / "item_ids.json").write_text("[]")
    response = admin.post("/admin/models/mult-dae/promote", json={"version": 1}, headers=AUTH)
    assert response.status_code == 409, response.text
    assert "mult-dae/versions/1/item_ids.json" in response.json()["message"]
    _hides_the_store(response.text, store_dir)


def test_an_unreadable_alias_file_is_reported_without_the_store_path(
    admin: TestClient, store_dir: Path
) -> None:
    (store_dir / "mult-vae" / "aliases" / "production.json").write_text("{}")
    response = admin.post("/admin/models/mult-vae/rollback", headers=AUTH)
    assert response.status_code == 409, response.text
    assert "mult-vae/aliases/production.json" in response.json()["message"]
    _hides_the_store(response.text, store_dir)
    # The listing says it in that model's entry and lists every other model as before.
    listing = admin.get("/admin/models", headers=AUTH)
    assert listing.status_code == 200, listing.text
    models = {m["name"]: m for m in listing.json()["models"]}
    broken = models["mult-vae"]
    assert broken["aliases"] == {} and broken["versions"]
    assert "mult-vae/aliases/production.json" in broken["aliases_unreadable"]
    assert all(m["aliases_unreadable"] is None for n, m in models.items() if n != "mult-vae")
    assert models["ease"]["aliases"] == {"production": "1"}
    _hides_the_store(listing.text, store_dir)


def test_an_unreadable_manifest_is_listed_without_the_store_path(
    admin: TestClient, store_dir: Path
) -> None:
    """One hand-edited manifest made GET /admin/models a 409 for every model; it is
    listed in its model's ``unreadable``, named relative to the store."""
    (store_dir / "mult-dae" / "versions" / "1" / "manifest.json").write_text("{oops")
    response = admin.get("/admin/models", headers=AUTH)
    assert response.status_code == 200, response.text
    models = {m["name"]: m for m in response.json()["models"]}
    assert models["mult-dae"]["versions"] == []
    assert "mult-dae/versions/1/manifest.json" in models["mult-dae"]["unreadable"]["1"]
    assert models["mult-vae"]["unreadable"] == {} and models["mult-vae"]["versions"]
    _hides_the_store(response.text, store_dir)


# --------------------------------------------------------------------------- dashboard


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF field"
    return found.group(1)


def test_the_dashboards_models_pages_do_not_name_the_store_path(
    admin: TestClient, store_dir: Path
) -> None:
    """The dashboard shows the same store errors (its forms call the admin routes)."""
    log_in(admin, TOKEN)
    for path in ("/dashboard/models/convmf/versions/1", "/dashboard/models/mult-vae/versions/9"):
        page = admin.get(path)
        assert page.status_code == 404, page.text[:300]
        _hides_the_store(page.text, store_dir)
    assert "no versions in the model store" in admin.get("/dashboard/models/convmf/versions/1").text
    (store_dir / "mult-dae" / "versions" / "1" / "item_ids.json").write_text("[]")
    token = _csrf(admin.get("/dashboard/models").text)
    refused = admin.post(
        "/dashboard/models/mult-dae/promote", data={"version": "1", "csrf_token": token}
    )
    assert refused.status_code == 409, refused.text[:300]
    assert "mult-dae/versions/1/item_ids.json" in refused.text
    _hides_the_store(refused.text, store_dir)


def test_a_jobs_error_and_log_name_store_files_relative_to_the_store(
    make_client: ClientFactory, store_dir: Path, tmp_path: Path
) -> None:
    """A worker writes the store's own error text into the job (a promotion that failed on
    an unreadable alias file): the API's and the dashboard's job answers hide the path."""
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path}/jobs.db"
    admin = make_client(admin_token=TOKEN, database_url=url)
    queued = admin.post("/admin/retrain", json={"model": "ease"}, headers=AUTH)
    assert queued.status_code == 202, queued.text
    job = queued.json()["job_id"]
    alias = store_dir / "ease" / "aliases" / "production.json"
    error = f"promotion failed: alias file {alias} is unreadable: not valid JSON"
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(
            text("UPDATE retrain_jobs SET error = :e, log_tail = :l WHERE id = :id"),
            {"e": error, "l": f"claimed\n{error}", "id": job},
        )
    engine.dispose()
    answers = [admin.get(f"/admin/jobs/{job}", headers=AUTH).json()]
    answers += admin.get("/admin/jobs", headers=AUTH).json()["jobs"]
    for answer in answers:
        assert (
            answer["error"]
            == "promotion failed: alias file ease/aliases/production.json is unreadable: not valid JSON"
        )
        assert answer["log_tail"] == ["claimed", answer["error"]]
    log_in(admin, TOKEN)
    page = admin.get("/dashboard/jobs")
    assert page.status_code == 200 and "ease/aliases/production.json" in page.text
    _hides_the_store(page.text, store_dir)


def test_the_models_page_lists_every_model_when_one_alias_file_is_unreadable(
    admin: TestClient, store_dir: Path
) -> None:
    (store_dir / "mult-vae" / "aliases" / "production.json").write_text("{}")
    log_in(admin, TOKEN)
    page = admin.get("/dashboard/models")
    assert page.status_code == 200, page.text[:300]
    assert 'data-testid="aliases-unreadable"' in page.text
    assert "The aliases of mult-vae cannot be read" in page.text
    assert 'id="model-ease"' in page.text
    _hides_the_store(page.text, store_dir)
