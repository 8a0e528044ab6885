"""Bodies read by ``app.api.body``: the same answers and documentation as a FastAPI body
parameter, checked side by side on one app with the project's error handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import Body, FastAPI, Request
from fastapi.testclient import TestClient

from app.api.body import document_request_bodies, openapi_body, parse_body
from app.core.errors import install_error_handlers
from app.schemas import AdHocRecommendationRequest, InteractionsBody, PredictionRequest
from tests.app.api.conftest import ADMIN, ADMIN_TOKEN


def _app() -> FastAPI:
    """``/fastapi/<kind>`` takes the body as a parameter, ``/ours/<kind>`` reads it itself."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/fastapi/predict")
    async def fastapi_predict(body: PredictionRequest) -> dict[str, Any]:
        return body.model_dump()

    @app.post("/ours/predict", openapi_extra=openapi_body(PredictionRequest))
    async def ours_predict(request: Request) -> dict[str, Any]:
        body: PredictionRequest = await parse_body(PredictionRequest, request)
        return body.model_dump()

    @app.post("/fastapi/interactions")
    async def fastapi_interactions(body: Annotated[InteractionsBody, Body()]) -> dict[str, Any]:
        return {"kind": type(body).__name__, **body.model_dump(mode="json")}

    @app.post("/ours/interactions", openapi_extra=openapi_body(InteractionsBody))
    async def ours_interactions(request: Request) -> dict[str, Any]:
        body = await parse_body(InteractionsBody, request)
        return {"kind": type(body).__name__, **body.model_dump(mode="json")}

    document_request_bodies(app)
    return app


def _deep(n: int) -> str:
    return "[" * n + "]" * n


JSON = {"Content-Type": "application/json"}
#: (kind, content, headers): valid bodies and every way FastAPI refuses one.
CASES: list[tuple[str, bytes, dict[str, str]]] = [
    ("predict", b'{"user_id": "u1", "item_ids": ["1", "2"]}', JSON),
    ("predict", b'{"user_id": "u1", "item_ids": ["1"]}', {}),  # no Content-Type: not JSON
    ("predict", b'{"user_id": "u1", "item_ids": ["1"]}', {"Content-Type": "application/x+json"}),
    ("predict", b'{"user_id": "u1", "item_ids": ["1"]}', {"Content-Type": "text/plain"}),
    ("predict", b"", JSON),
    ("predict", b'{"user_id": "u1", ', JSON),
    ("predict", b'{"user_id": "u1", "item_ids": []}', JSON),
    ("predict", b'{"user_id": "u1", "item_ids": ["1"], "itemIds": 3}', JSON),
    ("predict", b'["not", "an", "object"]', JSON),
    ("interactions", b'{"user_id": "u1", "item_id": "i1", "rating": 4.5}', JSON),
    ("interactions", b'{"interactions": [{"user_id": "u1", "item_id": "i1"}]}', JSON),
    (
        "interactions",
        b'{"interactions": [{"user_id": "u1", "item_id": "i1", "rating": "5"}]}',
        JSON,
    ),
    ("interactions", b'{"interactions": []}', JSON),
    ("interactions", b"7", JSON),
]


@pytest.mark.parametrize(("kind", "content", "headers"), CASES)
def test_the_answer_is_fastapis_own(kind: str, content: bytes, headers: dict[str, str]) -> None:
    client = TestClient(_app())
    theirs = client.post(f"/fastapi/{kind}", content=content, headers=headers)
    ours = client.post(f"/ours/{kind}", content=content, headers=headers)
    assert ours.status_code == theirs.status_code, (ours.text, theirs.text)
    body, expected = ours.json(), theirs.json()
    body.pop("request_id", None), expected.pop("request_id", None)
    assert body == expected


def test_the_cases_cover_success_and_each_refusal() -> None:
    client = TestClient(_app())
    statuses = {client.post(f"/ours/{k}", content=c, headers=h).status_code for k, c, h in CASES}
    assert statuses == {200, 415, 422}


@pytest.mark.parametrize("route", ["/fastapi/interactions", "/ours/interactions"])
@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/plain"}])
def test_an_interactions_body_not_labelled_json_is_a_415(
    route: str, headers: dict[str, str]
) -> None:
    """The batch-or-single union puts its tag in the error's location (``body.single``):
    curl's ``-d`` without ``-H content-type`` got a 422 "Input should be a valid
    dictionary" there, where every other body route answers the README's 415."""
    r = TestClient(_app()).post(
        route, content=b'{"interactions": [{"user_id": "u1", "item_id": "i1"}]}', headers=headers
    )
    assert r.status_code == 415, r.text
    assert r.json()["error"] == "unsupported_media_type"
    assert "Content-Type: application/json" in r.json()["message"]


def test_the_operation_documents_the_body_and_its_models() -> None:
    schema = TestClient(_app()).get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for kind, models in (
        ("predict", {"PredictionRequest"}),
        ("interactions", {"InteractionBatch", "InteractionIn"}),
    ):
        body = schema["paths"][f"/ours/{kind}"]["post"]["requestBody"]
        assert body["required"] is True
        documented = body["content"]["application/json"]["schema"]
        refs = [documented.get("$ref")] + [o["$ref"] for o in documented.get("oneOf", [])]
        assert {r.rsplit("/", 1)[1] for r in refs if r} == models
        assert models <= set(components)
    fields = components["PredictionRequest"]["properties"]
    assert set(fields) == set(PredictionRequest.model_fields)


def test_a_route_of_the_service_documents_its_body(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/recommendations"]["post"]
    documented = operation["requestBody"]["content"]["application/json"]["schema"]
    assert documented == {"$ref": "#/components/schemas/AdHocRecommendationRequest"}
    components = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(components["AdHocRecommendationRequest"]["properties"]) == set(
        AdHocRecommendationRequest.model_fields
    )


def test_a_body_over_the_limit_is_a_413_declared_or_streamed() -> None:
    from types import SimpleNamespace

    from app.core.config import Settings
    from app.schemas import MAX_LIST

    app = _app()
    app.state.services = SimpleNamespace(settings=Settings(max_body_bytes=1000))
    client = TestClient(app)
    small = {"history": [{"item_id": "1"}], "k": 2}
    assert client.post("/ours/predict", json={"user_id": "u", "item_ids": ["1"]}).status_code != 413
    big = {**small, "exclude": [str(n) for n in range(500)]}
    r = client.post("/ours/predict", json=big)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "body_too_large" and "GENREC_MAX_BODY_BYTES" in r.json()["message"]

    def chunks() -> Any:  # no Content-Length: the limit holds as the body streams in
        for _ in range(100):
            yield b" " * 100

    r = client.post("/ours/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    # The default fits the largest legal request (ASCII): 9 rules at their limits and
    # history, exclude and include of MAX_LIST ids of 256 characters.
    leaf = {"op": "any", "attr": "a", "values": ["v" * 256] * 256}
    rule = {"op": "or", "rules": [leaf] * 63}
    ids = ["i" * 256] * MAX_LIST
    largest = {
        "history": [{"item_id": i, "rating": 5.0} for i in ids],
        "exclude": ids,
        "include": ids,
        "rules": {"filter": rule, "boosts": [{"rule": rule, "weight": 1.0}] * 8},
    }
    import json

    assert len(json.dumps(largest, separators=(",", ":"))) < Settings().max_body_bytes


#: (method, url, body): a key given twice in an object of every route's body, at the top
#: and nested; the bodies read by ``parse_body`` and those FastAPI reads (``AdminRoute``).
DUPLICATE_KEYS = [
    ("POST", "/v1/interactions", '{"user_id": "a", "item_id": "1", "user_id": "b"}', "user_id"),
    (
        "POST",
        "/v1/interactions",
        '{"interactions": [{"user_id": "a", "item_id": "1", "item_id": "2"}]}',
        "item_id",
    ),
    ("POST", "/v1/predictions", '{"user_id": "1", "item_ids": ["1"], "user_id": "2"}', "user_id"),
    ("POST", "/v1/recommendations", '{"history": [{"item_id": "1", "item_id": "2"}]}', "item_id"),
    ("PUT", "/v1/items/x", '{"title": "A", "title": "B"}', "title"),
    ("POST", "/admin/models/mult-vae/promote", '{"version": 1, "version": 2}', "version"),
    ("POST", "/admin/retrain", '{"model": "ease", "params": {"l2": 1, "l2": 2}}', "l2"),
]


@pytest.mark.parametrize(("method", "url", "content", "key"), DUPLICATE_KEYS)
def test_a_key_given_twice_in_a_json_object_is_a_422_naming_it(
    make_client: Callable[..., TestClient], method: str, url: str, content: str, key: str
) -> None:
    """``json.loads`` keeps the last of two values silently: an interaction was logged for
    whichever user_id came last, an item got the second title. Which one the client
    meant is a guess, so the request is refused, as a query parameter given twice is."""
    client = make_client(admin_token=ADMIN_TOKEN)
    answer = client.request(method, url, content=content, headers={**JSON, **ADMIN})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid_request"
    assert body["problems"] == [
        {
            "field": "body",
            "message": f"key {key!r} appears more than once in one JSON object; give each key once",
        }
    ]


def test_an_admin_body_with_a_key_twice_is_read_only_after_the_token(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(admin_token=ADMIN_TOKEN)
    answer = client.post("/admin/retrain", content='{"model": "ease", "model": "x"}', headers=JSON)
    assert answer.status_code == 401


def test_unique_keys_still_pass_and_nothing_else_changes(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(admin_token=ADMIN_TOKEN)
    logged = client.post(
        "/v1/interactions", content='{"user_id": "a", "item_id": "1"}', headers=JSON
    )
    assert logged.status_code == 201, logged.text
    put = client.put("/v1/items/x", content='{"title": "A"}', headers={**JSON, **ADMIN})
    assert put.status_code == 201, put.text
    assert put.json()["title"] == "A"
    # the same key in two different objects is no duplicate
    two = '{"interactions": [{"user_id": "a", "item_id": "1"}, {"user_id": "a", "item_id": "2"}]}'
    assert client.post("/v1/interactions", content=two, headers=JSON).json() == {"accepted": 2}


#: (content, what the 400 says): bodies ``json.loads`` cannot read at all, none of them a
#: syntax error with a position. FastAPI answers each "There was an error parsing the
#: body", which says neither what is wrong nor what to change.
UNREADABLE = [
    (b'{"user_id": "\xff\xfe"}', "body: the bytes are not utf-8 text (byte 0xff at offset 13)"),
    (('{"user_id": ' + _deep(50_000) + "}").encode(), "body: JSON nested too deeply to read"),
    (('{"k": ' + "9" * 5_000 + "}").encode(), "body: a number of more than 4,300 digits"),
    # UTF-16 and UTF-32 without a charset were read: json.loads detects the encoding
    ('{"user_id": "a", "item_id": "1"}'.encode("utf-16-le"), "body: the bytes are utf-16-le text"),
    ('{"user_id": "a", "item_id": "1"}'.encode("utf-32"), "body: the bytes are utf-32 text"),
]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/v1/interactions"),
        ("POST", "/v1/predictions"),
        ("POST", "/v1/recommendations"),
        ("PUT", "/v1/items/x"),
        ("POST", "/admin/retrain"),
    ],
)
@pytest.mark.parametrize(("content", "message"), UNREADABLE)
def test_a_body_json_cannot_read_is_a_400_saying_why(
    make_client: Callable[..., TestClient], method: str, url: str, content: bytes, message: str
) -> None:
    client = make_client(admin_token=ADMIN_TOKEN)
    answer = client.request(method, url, content=content, headers={**JSON, **ADMIN})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_request"
    assert body["message"].startswith(message), body["message"]


def test_a_client_that_leaves_mid_body_is_a_400_not_an_unhandled_error() -> None:
    """``ClientDisconnect`` escaped ``parse_body``: an ERROR with a traceback in the log and
    a 500 in the latency metric for a client that went away (FastAPI-read bodies make it a
    400, as here)."""
    import asyncio

    from app.core.errors import ApiError

    messages = [
        {"type": "http.request", "body": b'{"user_id": "a", ', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/interactions",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
        "app": FastAPI(),
    }
    with pytest.raises(ApiError) as raised:
        asyncio.run(parse_body(InteractionsBody, Request(scope, receive)))
    assert (raised.value.status, raised.value.code) == (400, "invalid_request")
    assert raised.value.message == "body: the client disconnected before sending all of it"
