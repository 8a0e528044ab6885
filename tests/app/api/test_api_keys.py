"""``GENREC_API_KEYS``: /v1 needs a bearer key when keys are set, and stays open without.

Before it, /v1 had no check at all: anyone who reached the port read any user's
recommendations and wrote interactions for any user.
"""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient

from app.core.api_keys import OPEN_API_WARNING
from tests.app.conftest import ClientFactory
from tests.app.dashboard.login import log_in

OLD_KEY = "old-key-7f3a9c1e5b2d4f60"
NEW_KEY = "new-key-0c4e8a2f6b1d9e37"
ADMIN_TOKEN = "admin-token-5e1b7d3f9a"
WRONG = "wrong-key-2b6d0f4a8c1e3a57"


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


#: A read and a write of the hot path.
GET = ("GET", "/v1/users/u1/recommendations", None)
POST = ("POST", "/v1/interactions", {"user_id": "u1", "item_id": "3"})


@pytest.fixture
def keyed(make_client: ClientFactory) -> TestClient:
    """Two keys (a rotation under way) and an admin token."""
    return make_client(api_keys=f"{OLD_KEY}, {NEW_KEY}", admin_token=ADMIN_TOKEN)


def _call(
    client: TestClient, request: tuple[str, str, object], headers: dict[str, str] | None = None
):
    method, path, body = request
    return client.request(method, path, json=body, headers=headers or {})


def _metric(client: TestClient, reason: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf'^genrec_api_key_refused_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_without_keys_v1_is_open_and_the_server_says_so_once(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app")
    client = make_client()
    assert _call(client, GET).status_code == 200
    assert _call(client, POST).status_code == 201
    warnings = [r for r in caplog.records if r.getMessage() == OPEN_API_WARNING]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "ApiKey" not in client.get("/openapi.json").json()["components"].get(
        "securitySchemes", {}
    )


def test_keys_set_say_nothing_about_an_open_api(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app")
    make_client(api_keys=NEW_KEY)
    assert not [r for r in caplog.records if r.getMessage() == OPEN_API_WARNING]


@pytest.mark.parametrize("request_", [GET, POST], ids=["get", "post"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer(WRONG),
        {"Authorization": f"Basic {NEW_KEY}"},  # right key, wrong scheme
        {"X-API-Key": NEW_KEY},  # one way to send a key: the bearer header
        bearer(NEW_KEY[:-1]),
    ],
    ids=["missing", "wrong", "basic", "x-api-key", "prefix"],
)
def test_without_a_right_key_it_is_401(
    keyed: TestClient, request_: tuple[str, str, object], headers: dict[str, str]
) -> None:
    answer = _call(keyed, request_, headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    body = answer.json()
    assert body["error"] == "unauthorized"
    assert body["request_id"] == answer.headers["X-Request-ID"]
    assert set(body) == {"error", "message", "request_id"}


def test_a_refused_write_stores_nothing(keyed: TestClient) -> None:
    event = {"user_id": "refused-user", "item_id": "3"}
    assert keyed.post("/v1/interactions", json=event, headers=bearer(WRONG)).status_code == 401
    history = keyed.get("/v1/users/refused-user/recommendations", headers=bearer(NEW_KEY))
    assert history.json()["fallback"] is True  # nothing logged for the user


@pytest.mark.parametrize("credential", [OLD_KEY, NEW_KEY, ADMIN_TOKEN])
def test_both_keys_of_a_rotation_and_the_admin_token_pass(
    keyed: TestClient, credential: str
) -> None:
    assert _call(keyed, GET, bearer(credential)).status_code == 200
    assert _call(keyed, POST, bearer(credential)).status_code == 201
    lower = {"Authorization": f"bearer {credential}"}  # the scheme is case-insensitive
    assert _call(keyed, GET, lower).status_code == 200


def test_every_v1_path_is_guarded_even_one_no_route_serves(keyed: TestClient) -> None:
    for path in ("/v1/items/1/similar", "/v1/items/1", "/v1/no-such-route", "/v1"):
        assert keyed.get(path).status_code == 401, path
    assert keyed.get("/v1/no-such-route", headers=bearer(NEW_KEY)).status_code == 404


def test_health_metrics_and_docs_stay_open(keyed: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert keyed.get(path).status_code == 200, path
    assert keyed.head("/healthz").status_code == 200


def test_an_api_key_does_not_open_admin_routes(keyed: TestClient) -> None:
    for method, path, body in [
        ("PUT", "/v1/items/new-item", {"title": "t"}),
        ("DELETE", "/v1/items/3", None),
        ("DELETE", "/v1/users/u1", None),
        ("GET", "/admin/jobs", None),
        ("GET", "/admin/models", None),
    ]:
        answer = keyed.request(method, path, json=body, headers=bearer(NEW_KEY))
        assert answer.status_code == 401, (method, path, answer.text)
    admin = keyed.put("/v1/items/new-item", json={"title": "t"}, headers=bearer(ADMIN_TOKEN))
    assert admin.status_code in (200, 201), admin.text


def test_refusals_are_counted_by_reason(keyed: TestClient) -> None:
    before = {reason: _metric(keyed, reason) for reason in ("missing", "invalid")}
    _call(keyed, GET)
    _call(keyed, GET, bearer(WRONG))
    _call(keyed, POST, bearer(WRONG))
    _call(keyed, GET, bearer(NEW_KEY))
    assert _metric(keyed, "missing") == before["missing"] + 1
    assert _metric(keyed, "invalid") == before["invalid"] + 2


def test_no_key_reaches_the_logs_or_an_answer(
    keyed: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [
        _call(keyed, request, headers)
        for request in (GET, POST)
        for headers in ({}, bearer(WRONG), bearer(OLD_KEY), bearer(NEW_KEY), bearer(ADMIN_TOKEN))
    ]
    texts = [a.text + str(dict(a.headers)) for a in answers]
    texts.append(keyed.get("/openapi.json").text)
    texts.append(keyed.get("/metrics").text)
    settings = keyed.app.state.services.settings  # type: ignore[attr-defined]
    texts.append(repr(settings))
    for secret in (OLD_KEY, NEW_KEY, WRONG, ADMIN_TOKEN):
        assert secret not in caplog.text
        assert all(secret not in text for text in texts), secret


def test_wrong_credentials_lock_out_the_admin_token_but_never_a_key(
    make_client: ClientFactory,
) -> None:
    """/v1 takes the admin token, so wrong credentials there count against the admin
    throttle (else /v1 would be an unthrottled way to guess the admin token); a valid
    API key still passes from the locked-out address (clients behind one NAT)."""
    client = make_client(api_keys=NEW_KEY, admin_token=ADMIN_TOKEN, admin_max_failures=3)
    for _ in range(3):
        assert _call(client, GET, bearer(WRONG)).status_code == 401
    locked = _call(client, GET, bearer(ADMIN_TOKEN))
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert locked.json()["error"] == "too_many_failures"
    assert client.get("/admin/jobs", headers=bearer(ADMIN_TOKEN)).status_code == 429
    assert _call(client, GET, bearer(NEW_KEY)).status_code == 200
    assert _call(client, GET).status_code == 401  # a missing key is no guess: still a 401
    assert _metric(client, "locked_out") == 1


def test_without_an_admin_token_wrong_keys_are_not_throttled(make_client: ClientFactory) -> None:
    client = make_client(api_keys=NEW_KEY, admin_max_failures=2)
    for _ in range(5):
        assert _call(client, GET, bearer(WRONG)).status_code == 401
    assert _call(client, GET, bearer(NEW_KEY)).status_code == 200


def test_openapi_declares_the_key_scheme(keyed: TestClient) -> None:
    schema = keyed.get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    recommendations = schema["paths"]["/v1/users/{user_id}/recommendations"]["get"]
    assert recommendations["security"] == [{"ApiKey": []}, {"AdminToken": []}]
    assert {"401", "429"} <= set(recommendations["responses"])
    refused = recommendations["responses"]["401"]["content"]["application/json"]["schema"]
    assert refused == {"$ref": "#/components/schemas/ErrorResponse"}
    # An admin route under /v1 keeps the admin token alone; outside /v1 nothing changes.
    assert schema["paths"]["/v1/items/{item_id}"]["put"]["security"] == [{"AdminToken": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_the_dashboard_explore_page_works_with_keys_set(make_client: ClientFactory) -> None:
    """The dashboard calls the serving code in-process, behind its own login."""
    client = make_client(api_keys=NEW_KEY, admin_token=ADMIN_TOKEN, default_model="ease")
    log_in(client, ADMIN_TOKEN)
    page = client.get("/dashboard/explore", params={"user": "u1", "item": "3"})
    assert page.status_code == 200, page.text[:500]
    assert "(12 items, as ease sees it)" in page.text
    ease_list = page.text.split('data-testid="list-ease"')[1].split("</div>")[0]
    assert "ease v" in ease_list and 'class="problem"' not in ease_list
    similar = page.text.split('id="item-h"')[1].split("</section>")[0]
    assert "similar items" in similar and 'class="problem"' not in similar
    # The browser holds a session cookie, no key: the API itself still wants one.
    assert client.get("/v1/users/u1/recommendations").status_code == 401


@pytest.mark.parametrize("root_path", ["", "/v", "/v1", "/api"])
def test_the_guard_sees_the_path_the_router_routes(root_path: str) -> None:
    """With ``uvicorn --root-path /v`` (h11 takes a target without its leading slash), the
    path ``/v1/secret`` was stripped of ``/v`` by the guard, so not guarded, while the
    router, which strips a root path only before a ``/``, served ``/v1/secret``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from app.core.api_keys import ApiKeyMiddleware
    from app.core.metrics import Metrics

    def served(request: Request) -> PlainTextResponse:
        return PlainTextResponse("served")

    router = Starlette(routes=[Route("/v1/secret", served)])
    guarded = ApiKeyMiddleware(
        router, keys=[NEW_KEY], admin_token=None, metrics=Metrics(), throttle=lambda: None
    )
    client = TestClient(guarded, root_path=root_path)
    paths = ("/v1/secret", f"{root_path}/v1/secret", f"{root_path}/secret")
    routed = [
        path for path in paths if client.get(path, headers=bearer(NEW_KEY)).status_code == 200
    ]
    assert routed, "the route is reachable with the key"
    for path in routed:  # whatever the router serves, the guard guards
        answer = client.get(path)
        assert answer.status_code == 401, (path, answer.status_code, answer.text)
