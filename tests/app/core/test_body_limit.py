"""``GENREC_MAX_BODY_BYTES`` holds on every route that takes a body, not only the POST
routes that read theirs themselves: a catalog PUT, an admin POST and a dashboard form
over the limit are a 413 ``body_too_large``, by declared length or as a chunked body
streams in; a body under it is answered as before."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ClientFactory

TOKEN = "body-limit-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
LIMIT = 2_000


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client(admin_token=TOKEN, max_body_bytes=LIMIT)


def _chunks(size: int) -> Iterator[bytes]:
    """A JSON object of about ``size`` bytes in 100-byte chunks (no Content-Length)."""
    yield b'{"title": "'
    for _ in range(size // 100):
        yield b"x" * 100
    yield b'"}'


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/items/big-item"),
        ("POST", "/admin/experiments"),
        ("POST", "/admin/retrain"),
    ],
)
def test_a_body_over_the_limit_is_a_413_on_any_route(
    client: TestClient, method: str, path: str
) -> None:
    body = '{"title": "' + "x" * (LIMIT + 100) + '"}'
    declared = client.request(method, path, content=body, headers=AUTH)
    streamed = client.request(method, path, content=_chunks(LIMIT + 100), headers=AUTH)
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text
        payload = answer.json()
        assert payload["error"] == "body_too_large"
        assert "GENREC_MAX_BODY_BYTES" in payload["message"] and payload["request_id"]
        assert answer.headers["x-request-id"] == payload["request_id"]


def test_a_body_under_the_limit_is_answered_as_before(client: TestClient) -> None:
    small = client.put("/v1/items/small-item", json={"title": "fits"}, headers=AUTH)
    assert small.status_code in (200, 201), small.text
    streamed = client.put("/v1/items/streamed", content=_chunks(900), headers=AUTH)
    assert streamed.status_code in (200, 201), streamed.text


def test_a_dashboard_form_over_the_limit_is_refused(client: TestClient) -> None:
    form = {"token": "t" * (LIMIT + 100)}
    answer = client.post("/dashboard/login", data=form)
    assert answer.status_code == 413, answer.text[:300]


def test_the_dashboard_takes_no_body_larger_than_its_largest_form(
    make_client: ClientFactory,
) -> None:
    # Forms are parsed before the session is checked: under GENREC_MAX_BODY_BYTES alone
    # (64 MB) anyone could make the server parse a 64 MB form per request.
    from app.dashboard import MAX_FORM_BYTES

    client = make_client(admin_token=TOKEN)
    over = {"token": "t" * MAX_FORM_BYTES}
    for path in ("/dashboard/login", "/dashboard/jobs", "/dashboard/explore/text"):
        for answer in (
            client.post(path, data=over),
            client.post(path, files={"f": ("f", b"x" * MAX_FORM_BYTES)}),
        ):
            assert answer.status_code == 413, (path, answer.text[:300])
            assert "the dashboard's forms" in html.unescape(answer.text)
    # A large form still fits: a new item's text at its limit in 3-byte characters (9 bytes
    # each once %-encoded; Starlette refuses a field over 1 MiB itself).
    from app.schemas_catalog import MAX_TEXT

    largest = {"model": "mult-vae", "title": "t" * 200, "text": "\u4e00" * MAX_TEXT}
    answer = client.post("/dashboard/explore/text", data=largest, follow_redirects=False)
    assert answer.status_code == 303  # on to the login form: the body was let through
    # The API keeps GENREC_MAX_BODY_BYTES.
    exclude = [f"{n:0150d}" for n in range(10_000)]
    assert len(str(exclude)) > MAX_FORM_BYTES
    big = client.post("/v1/recommendations", json={"exclude": exclude})
    assert big.status_code == 200, big.text[:300]


def test_a_dashboard_body_over_the_limit_gets_the_dashboards_page(client: TestClient) -> None:
    """The 413 was the API's JSON in the operator's browser (or swapped into a panel)."""
    over = "token=" + "t" * (LIMIT + 100)
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def streamed() -> Iterator[bytes]:
        yield over.encode()

    for content in (over, streamed()):
        page = client.post("/dashboard/login", content=content, headers=form)
        assert page.status_code == 413 and "text/html" in page.headers["content-type"]
        assert "<html" in page.text and '"request_id"' not in page.text
        assert f"over {LIMIT} bytes" in page.text and "<h1>Too large</h1>" in page.text
        assert page.headers["cache-control"] == "no-store"
    fragment = client.post("/dashboard/jobs", content=over, headers={**form, "HX-Request": "true"})
    assert fragment.status_code == 413 and "<html" not in fragment.text
    assert 'data-testid="panel-problem"' in fragment.text and f"over {LIMIT} bytes" in fragment.text
    api = client.put("/v1/items/x", content=over, headers=AUTH)  # the API keeps its JSON
    assert (api.status_code, api.json()["error"]) == (413, "body_too_large")


def test_the_dashboards_smaller_limit_holds_under_a_root_path(make_client: ClientFactory) -> None:
    """Under ``uvicorn --root-path /genrec`` the scope's path of ``/dashboard/login`` is
    ``/genrec/dashboard/login``, which the router strips back to the login form: read raw,
    the prefix did not match and an anonymous form of up to GENREC_MAX_BODY_BYTES (64 MB)
    was parsed there before any session check."""
    from app.dashboard import MAX_FORM_BYTES

    routed = make_client(admin_token=TOKEN)
    client = TestClient(routed.app, root_path="/genrec", raise_server_exceptions=False)
    assert client.get("/genrec/dashboard/login").status_code == 200  # the router's page
    fields = {f"f{n}": "x" * 100_000 for n in range(MAX_FORM_BYTES // 100_000 + 1)}
    for answer in (
        client.post("/genrec/dashboard/login", data=fields),  # fields under 1 MiB each
        client.post("/genrec/dashboard/login", files={"f": ("f", b"x" * MAX_FORM_BYTES)}),
    ):
        assert answer.status_code == 413, answer.text[:300]
        assert "the dashboard's forms" in html.unescape(answer.text)
