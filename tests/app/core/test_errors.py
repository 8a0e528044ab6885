"""Error handlers: ApiError as JSON, readable 422s, 500 without a traceback, request ids."""

from __future__ import annotations

import os

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, ValidationError

from app.core.errors import ApiError, describe_validation_errors, install_error_handlers
from app.core.metrics import Metrics
from app.core.middleware import RequestContextMiddleware
from app.schemas_fields import Id


class Body(BaseModel):
    n: int


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # as the app's request bodies

    n: int


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=Metrics())

    @app.get("/teapot")
    def teapot() -> None:
        raise ApiError(418, "teapot", "short and stout", details={"spout": True})

    @app.get("/echo-setting")
    def echo_setting() -> None:  # as ModelConfig.with_overrides names an unknown key
        raise ApiError(422, "invalid_request", "params: unknown setting '" + "k" * 100_000 + "'")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    @app.post("/body")
    def body(b: Body) -> int:
        return b.n

    @app.post("/strict")
    def strict(b: StrictBody) -> int:
        return b.n

    @app.get("/pair")
    def pair_get() -> int:
        return 1

    @app.post("/pair")
    def pair_post() -> int:
        return 2

    nested = APIRouter()  # the app's routes live in included routers

    @nested.get("/things")
    def list_things() -> int:
        return 3

    @nested.post("/things")
    def add_thing() -> int:
        return 4

    app.include_router(nested, prefix="/in")
    return app


def test_api_error_becomes_its_status_and_json() -> None:
    client = TestClient(_app())
    r = client.get("/teapot")
    assert r.status_code == 418
    body = r.json()
    assert (body["error"], body["message"], body["details"]) == (
        "teapot",
        "short and stout",
        {"spout": True},
    )
    assert body["request_id"] == r.headers["x-request-id"]


def test_405_lists_every_method_of_the_path() -> None:
    """Two routes on one path: Starlette's own 405 named only the first one's methods."""
    client = TestClient(_app())
    r = client.put("/pair")
    assert r.status_code == 405
    assert r.json()["error"] == "method_not_allowed"
    # HEAD with every GET: the app answers it (app.core.head, installed by create_app).
    assert r.headers["allow"] == "GET, HEAD, POST"
    r = client.delete("/body")
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    r = client.options("/in/things")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD, POST")


def test_unexpected_error_is_a_bare_500_with_request_id() -> None:
    client = TestClient(_app(), raise_server_exceptions=False)
    r = client.get("/boom", headers={"X-Request-ID": "req-1"})
    assert r.status_code == 500
    assert r.json() == {"error": "internal", "request_id": "req-1"}
    assert r.headers["x-request-id"] == "req-1"
    assert "secret" not in r.text and "Traceback" not in r.text


def test_validation_error_names_the_field() -> None:
    r = TestClient(_app()).post("/body", json={"n": "many"})
    assert r.status_code == 422
    assert r.json()["message"].startswith("n: ")
    assert r.json()["problems"][0]["field"] == "n"


def test_describe_validation_errors_paths() -> None:
    errors = [
        {"loc": ("body", "interactions", 3, "rating"), "msg": "bad"},
        {"loc": ("query", "k"), "msg": "worse"},
        {"loc": ("body", "batch", "interactions"), "msg": "tagged"},
        {"loc": (), "msg": "whole body"},
    ]
    assert describe_validation_errors(errors) == [
        {"field": "interactions[3].rating", "message": "bad"},
        {"field": "k", "message": "worse"},
        {"field": "interactions", "message": "tagged"},
        {"field": "body", "message": "whole body"},
    ]


def test_a_body_that_is_not_json_says_where_and_why() -> None:
    """FastAPI's own message was "[18]: JSON decode error": neither a field nor a reason."""
    r = TestClient(_app()).post(
        "/body", content=b'{"n": 1, ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["problems"] == [
        {
            "field": "body",
            "message": "not valid JSON at character 9: "
            "Expecting property name enclosed in double quotes",
        }
    ]


def test_a_body_not_labelled_json_is_a_415_naming_its_content_type() -> None:
    """FastAPI validates an unlabelled body's raw bytes: "Input should be a valid dictionary"
    sent a client whose JSON was fine looking for a fault in it."""
    client = TestClient(_app())
    r = client.post("/body", content=b'{"n": 1}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["error"] == "unsupported_media_type"
    assert r.json()["message"] == (
        "body: Content-Type is 'text/plain'; send the body as JSON with "
        "Content-Type: application/json"
    )
    r = client.post("/body", content=b'{"n": 1}')
    assert r.status_code == 415
    assert r.json()["message"].startswith("body: the request has no Content-Type; ")
    # labelled JSON, the body's own faults are still 422s naming the field
    assert client.post("/body", json={"n": "many"}).status_code == 422
    assert client.post("/body", json={"n": 1}).json() == 1


def _echo_app() -> FastAPI:
    app = _app()

    @app.get("/echo/{text}")
    def echo(text: str, q: str = "") -> dict[str, str]:
        return {"text": text, "q": q}

    return app


def test_a_url_that_is_not_utf8_is_a_400_before_any_route_sees_it() -> None:
    """The server decodes %-escapes with replacement: ``%ED%A0%80`` reached the route as
    three U+FFFD and, on ``PUT /v1/items/...``, stored an id the client never sent."""
    client = TestClient(_echo_app())
    for url, what in (("/echo/%ED%A0%80", "URL path"), ("/echo/a?q=%FF", "query string")):
        r = client.get(url)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"] == "invalid_request" and what in r.json()["message"]
        assert r.headers["x-request-id"] == r.json()["request_id"]
    # U+FFFD itself, sent as UTF-8, and ordinary escapes are text like any other.
    assert client.get("/echo/%EF%BF%BD?q=caf%C3%A9").json() == {"text": "\ufffd", "q": "café"}


def test_path_hider_names_places_relative_to_the_store() -> None:
    from app.core.errors import path_hider

    hide = path_hider("/srv/genrec/store")
    assert hide("model 'x' has no versions in /srv/genrec/store (models: a)") == (
        "model 'x' has no versions in the model store (models: a)"
    )
    assert hide("/srv/genrec/store/ease/versions/3/manifest.json is missing") == (
        "ease/versions/3/manifest.json is missing"
    )
    assert (
        hide("alias file '/srv/genrec/store/a/aliases/p.json'") == "alias file 'a/aliases/p.json'"
    )
    assert hide("no versions in /srv/genrec/store. Or /srv/genrec/store/ itself") == (
        "no versions in the model store. Or the model store itself"
    )
    # Only the whole path: a sibling folder and a longer name are not the store.
    assert hide("/srv/genrec/store2/x, /srv/genrec/storefront, /srv/genrec/store.bak") == (
        "/srv/genrec/store2/x, /srv/genrec/storefront, /srv/genrec/store.bak"
    )
    # A relative root tells nothing of the disk; its absolute form is still hidden.
    # A root given with ".." is named by the store as given (Path keeps the ".."): hidden too.
    dotted = path_hider("/srv/genrec/x/../store")
    assert dotted("/srv/genrec/x/../store/ease/versions/1/manifest.json: bad") == (
        "ease/versions/1/manifest.json: bad"
    )
    relative = path_hider("store")
    assert relative("the store: store/ease/1") == "the store: store/ease/1"
    assert relative(f"{os.path.abspath('store')}/ease/1") == "ease/1"


def test_a_body_id_of_white_space_only_is_said_to_be_so() -> None:
    """``Id``'s pattern ``\\S`` failed as "String should match pattern '\\S'", where the same
    id in a URL, a PUT or the CLI is "only white space" (``schemas_fields.id_problem``)."""

    class Ids(BaseModel):
        user_id: Id

    with pytest.raises(ValidationError) as exc:
        Ids.model_validate({"user_id": " \t "})
    assert describe_validation_errors(exc.value.errors()) == [
        {
            "field": "user_id",
            "message": "only white space (3 characters): an id needs at least one other character",
        }
    ]


def test_a_422_echoes_client_keys_and_values_clipped() -> None:
    """An unknown 1 MB key was echoed whole as the problem's field and again in the
    message: a ~2 MB 422. Every location part and message is clipped to one line."""
    client = TestClient(_app())
    key = "k" * 1_000_000
    r = client.post("/strict", json={"n": 1, key: 1, "two\nlines": 2})
    assert r.status_code == 422
    assert len(r.content) < 2_000, len(r.content)
    fields = [p["field"] for p in r.json()["problems"]]
    assert fields == ["k" * 77 + "...", "two\\nlines"]
    long_message = describe_validation_errors([{"loc": ("body", "n"), "msg": "x" * 10_000}])
    assert len(long_message[0]["message"]) == 300


def test_a_415_quotes_a_long_content_type_clipped() -> None:
    """A 60 KB Content-Type was quoted whole in the 415's message."""
    r = TestClient(_app()).post(
        "/body", content=b'{"n": 1}', headers={"Content-Type": "text/" + "x" * 60_000}
    )
    assert r.status_code == 415
    assert len(r.content) < 500, len(r.content)
    assert r.json()["message"].startswith("body: Content-Type is 'text/xxx")


def test_an_api_error_message_is_bounded() -> None:
    """``POST /admin/retrain`` with a 100 KB unknown ``params`` key was a 100 KB 422: the
    message (written by ``training``, which knows nothing of answers) named the key whole."""
    r = TestClient(_app()).get("/echo-setting")
    assert r.status_code == 422
    message = r.json()["message"]
    assert len(message) == 1000 and message.startswith("params: unknown setting 'kkk")
    assert message.endswith("k...")
