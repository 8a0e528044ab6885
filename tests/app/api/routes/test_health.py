"""/healthz, /readyz, /metrics, /docs, request ids and JSON errors for unknown routes."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

#: /readyz gives its details (errors, versions, the cache backend) only to the admin token.
AUTH = {"Authorization": "Bearer t"}


def test_healthz_and_request_id(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.json() == {"status": "ok"} and len(r.headers["x-request-id"]) == 32
    r = client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    r = client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})
    assert r.headers["x-request-id"] != "bad id\twith tab"


def test_ready_when_database_and_default_model_are_up(make_client) -> None:  # type: ignore[no-untyped-def]
    r = make_client(admin_token="t").get("/readyz", headers=AUTH)
    body = r.json()
    assert r.status_code == 200 and body["ready"] is True
    assert body["database"] == {"ok": True}
    assert body["models"]["mult-vae"]["version"] == "1"
    assert body["cache"]["backend"] == "memory"


def test_a_database_without_the_current_schema_is_not_ok(make_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``SELECT 1`` answers on a database without genrec's tables (dropped and recreated,
    or never migrated): ``database.ok`` was true while every write answered 503."""
    from app.core.db import upgrade_database

    url = f"sqlite:///{tmp_path}/bare.db"
    client = make_client(database_url=url, auto_migrate=False, admin_token="t")
    body = client.get("/readyz", headers=AUTH).json()
    assert body["ready"] is True and body["degraded"] is True
    assert body["database"] == {
        "ok": False,
        "error": "the database has no genrec schema (never migrated): run `genrec migrate`",
    }
    upgrade_database(url, revision="0005")
    body = client.get("/readyz", headers=AUTH).json()
    assert body["database"]["ok"] is False
    assert body["database"]["error"].startswith("the database's schema is at revision 0005, ")
    upgrade_database(url)
    assert client.get("/readyz", headers=AUTH).json()["database"] == {"ok": True}


def test_readyz_names_a_refused_versions_files_relative_to_the_store(
    make_client, store_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    """A refusal named the store's absolute path on the server's disk, which every API
    answer leaves out (``app.core.errors.path_hider``), the admin's included."""
    tensors = store_dir / "mult-vae" / "versions" / "1" / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:100])
    answer = make_client(admin_token="t").get("/readyz", headers=AUTH)
    assert answer.status_code == 503
    body = answer.json()
    assert (
        "mult-vae/versions/1/tensors.safetensors has 100 bytes"
        in body["models"]["mult-vae"]["error"]
    )
    assert "mult-vae/versions/1/tensors.safetensors" in body["reason"]
    assert str(store_dir) not in answer.text and str(store_dir.resolve()) not in answer.text


def test_health_checks_answer_head_as_get_without_a_body(client: TestClient) -> None:
    """Some load balancers probe with HEAD; a 405 there marked a healthy server down."""
    for path in ("/healthz", "/readyz"):
        head = client.head(path)
        assert (head.status_code, head.content) == (200, b""), path


def test_not_ready_without_the_default_model(make_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = make_client(store_dir=tmp_path / "empty-store")
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["ready"] is False
    assert client.head("/readyz").status_code == 503
    assert r.json()["models"]["mult-vae"]["loaded"] is False


def test_metrics_expose_latency_cache_fallback_and_model_version(client: TestClient) -> None:
    client.get("/v1/users/u1/recommendations")
    client.get("/v1/users/u1/recommendations")
    client.get("/v1/users/stranger/recommendations")
    text = client.get("/metrics").text
    assert (
        'genrec_request_seconds_count{method="GET",route="/v1/users/{user_id}/recommendations",'
        'status="200"} 3.0' in text
    )
    assert "genrec_cache_hits_total 1.0" in text
    assert "genrec_cache_errors_total 0.0" in text
    assert "genrec_fallback_total 1.0" in text
    assert 'genrec_model_loaded{model="mult-vae",version="1"} 1.0' in text


def test_the_method_label_has_a_bounded_set_of_values(client: TestClient) -> None:
    # h11 (uvicorn --http h11, or uvicorn without httptools) passes any token as the
    # method: one label value per made-up method grew the registry without bound.
    for n in range(30):
        assert client.request(f"MADEUP{n}", "/healthz").status_code == 405
    client.request("PROPFIND", "/v2/nothing")
    text = client.get("/metrics").text
    assert "MADEUP" not in text and "PROPFIND" not in text
    assert 'genrec_request_seconds_count{method="other",route="/healthz",status="405"} 30.0' in text
    assert 'genrec_request_seconds_count{method="other",route="unmatched",status="404"} 1.0' in text
    assert 'genrec_request_seconds_count{method="GET",route="/healthz"' not in text
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'genrec_request_seconds_count{method="GET",route="/healthz",status="200"} 1.0' in text


def test_unknown_route_and_openapi(client: TestClient) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert "x-request-id" in r.headers
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/users/{user_id}/recommendations",
        "/v1/recommendations",
        "/v1/predictions",
        "/v1/interactions",
        "/v1/items/{item_id}/similar",
    ):
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_database_down_is_reported_but_reads_keep_the_server_ready(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client(database_url="postgresql://postgres@127.0.0.1:1/genrec", admin_token="t")
    r = client.get("/readyz", headers=AUTH)
    body = r.json()
    assert r.status_code == 200 and body["ready"] is True and body["degraded"] is True
    assert body["database"]["ok"] is False and "OperationalError" in body["database"]["error"]
    client.get("/v1/users/u1/recommendations")
    text = client.get("/metrics").text
    assert 'genrec_degraded_total{endpoint="recommendations"} 1.0' in text


def test_readyz_gives_details_only_to_the_admin_token(make_client) -> None:  # type: ignore[no-untyped-def]
    """/readyz is for probes, which need only the status code: without the admin token it
    named the database's host, port and user to anyone (the connection error)."""
    client = make_client(database_url="postgresql://secretuser@127.0.0.1:1/genrec", admin_token="t")
    public = client.get("/readyz")
    assert public.status_code == 200
    assert public.json() == {
        "ready": True,
        "degraded": True,
        "database": {"ok": False},
        "cache": {"ok": True},
        "models": {"mult-vae": {"loaded": True}},
        "default_model": "mult-vae",
        "reason": None,
    }
    for leak in ("secretuser", "127.0.0.1", "OperationalError", "memory", "cpu"):
        assert leak not in public.text, leak
    wrong = client.get("/readyz", headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()) == (200, public.json())
    admin = client.get("/readyz", headers={"Authorization": "Bearer t"})
    assert admin.status_code == 200 and '127.0.0.1", port 1' in admin.json()["database"]["error"]
    assert admin.json()["models"]["mult-vae"]["version"] == "1"
    assert admin.json()["cache"]["backend"] == "memory"


def test_readyz_says_why_not_ready_only_to_the_admin_token(make_client, store_dir: Path) -> None:  # type: ignore[no-untyped-def]
    tensors = store_dir / "mult-vae" / "versions" / "1" / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:100])
    client = make_client(admin_token="t")
    public = client.get("/readyz")
    assert public.status_code == 503 and client.head("/readyz").status_code == 503
    assert "tensors" not in public.text and "versions" not in public.text
    assert public.json()["reason"] == "the default model (mult-vae) is not loaded"
    admin = client.get("/readyz", headers={"Authorization": "Bearer t"})
    assert "tensors.safetensors has 100 bytes" in admin.json()["reason"]


def test_readyz_without_a_configured_admin_token_gives_no_details(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client(database_url="postgresql://secretuser@127.0.0.1:1/genrec")
    answer = client.get("/readyz", headers={"Authorization": "Bearer anything"})
    assert answer.json()["database"] == {"ok": False} and "secretuser" not in answer.text


def test_wrong_tokens_on_readyz_count_towards_the_admin_lockout(make_client) -> None:  # type: ignore[no-untyped-def]
    """Otherwise /readyz would be a way round the lockout to guess the admin token."""
    client = make_client(admin_token="t", admin_max_failures=3)
    for _ in range(3):
        assert client.get("/readyz", headers={"Authorization": "Bearer x"}).status_code == 200
    assert client.get("/admin/jobs", headers=AUTH).status_code == 429
    locked = client.get("/readyz", headers=AUTH)  # the right token, but locked out
    assert locked.status_code == 200 and "backend" not in locked.json()["cache"]


def test_an_api_key_sent_to_readyz_is_no_wrong_admin_token(make_client) -> None:  # type: ignore[no-untyped-def]
    """A client or probe that sends its API key on every request locked its address out
    of the admin API after a few probes."""
    client = make_client(admin_token="t", admin_max_failures=3, api_keys="client-key-0123456789")
    for _ in range(5):
        answer = client.get("/readyz", headers={"Authorization": "Bearer client-key-0123456789"})
        assert answer.status_code == 200 and "backend" not in answer.json()["cache"]
    assert client.get("/admin/jobs", headers=AUTH).status_code == 200


def test_readyz_says_plainly_that_the_named_default_model_has_no_production_version(  # type: ignore[no-untyped-def]
    make_client, store_dir: Path
) -> None:
    """It guessed ("no production version?") where one small read of the alias says which."""
    (store_dir / "mult-vae" / "aliases" / "production.json").unlink()
    client = make_client(admin_token="t", default_model="mult-vae")
    admin = client.get("/readyz", headers={"Authorization": "Bearer t"})
    assert admin.status_code == 503
    assert admin.json()["reason"] == (
        "default model 'mult-vae' (GENREC_DEFAULT_MODEL) has no production version; promote one "
        "(genrec models promote mult-vae VERSION)"
    )
