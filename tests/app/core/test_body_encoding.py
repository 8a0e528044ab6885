"""A body the server would misread is a 415 saying what to send, on every route that reads
one: a compressed body (``Content-Encoding``) and JSON or a form in another charset than
UTF-8. A body as every client sends it is answered as before.

Before: a gzip, deflate or br body was read as if it were JSON (a 400 saying the bytes are
not UTF-8, or a 422 about the JSON, sending the client to look for a fault in its JSON);
``charset=latin-1`` JSON was read as UTF-8 (a 400 for non-ASCII text; Latin-1 bytes that
happen to be valid UTF-8, ``Ã©``, would be stored as other characters); a UTF-16 body was
accepted; a compressed dashboard form was parsed as if it were plain and refused for a
missing field.
"""

from __future__ import annotations

import gzip
import html
import json
import re
import zlib

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ClientFactory

TOKEN = "body-encoding-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
INTERACTION = {"user_id": "Zoë", "item_id": "3", "rating": 5}


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client(admin_token=TOKEN)


#: (method, path, admin token, body): a route of each way a body is read: the hot routes
#: (``app.api.body``), the catalog PUT and the admin routes (FastAPI, ``StrictJsonRoute``).
ROUTES = [
    ("POST", "/v1/interactions", False, INTERACTION),
    ("POST", "/v1/predictions", False, {"user_id": "u1", "item_ids": ["3"]}),
    ("POST", "/v1/recommendations", False, {"history": [{"item_id": "3"}], "k": 2}),
    ("PUT", "/v1/items/zz", True, {"title": "Café"}),
    ("POST", "/admin/retrain", True, {"model": "ease"}),
    ("POST", "/admin/experiments", True, {"name": "exp"}),
]
ENCODED = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": lambda raw: b"\x0b\x80" + raw,  # an uncompressed brotli block would be this
    "gzip, identity": gzip.compress,
}


def _send(
    client: TestClient,
    route: tuple[str, str, bool, object],
    content: bytes,
    headers: dict[str, str],
) -> tuple[int, dict[str, str], dict[str, str]]:
    method, path, admin, _ = route
    answer = client.request(
        method, path, content=content, headers={**headers, **(ADMIN if admin else {})}
    )
    return answer.status_code, answer.json(), dict(answer.headers)


@pytest.mark.parametrize("encoding", sorted(ENCODED))
def test_a_compressed_body_is_a_415_naming_its_encoding(client: TestClient, encoding: str) -> None:
    raw = json.dumps(INTERACTION).encode()
    status, body, headers = _send(
        client, ROUTES[0], ENCODED[encoding](raw), {**JSON, "Content-Encoding": encoding}
    )
    assert status == 415, body
    assert body["error"] == "unsupported_media_type" and body["request_id"]
    assert f"Content-Encoding is {encoding!r}" in body["message"], body
    assert headers["accept-encoding"] == "identity"  # RFC 9110 15.5.16: what would do


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES])
def test_every_route_that_reads_a_body_refuses_one_it_would_misread(
    client: TestClient, route: tuple[str, str, bool, object]
) -> None:
    raw = json.dumps(route[3], ensure_ascii=False)
    gzipped = _send(
        client, route, gzip.compress(raw.encode()), {**JSON, "Content-Encoding": "gzip"}
    )
    latin = _send(
        client, route, raw.encode("latin-1"), {"Content-Type": "application/json; charset=latin-1"}
    )
    for status, body, _ in (gzipped, latin):
        assert (status, body["error"]) == (415, "unsupported_media_type"), (route, body)
    assert "must be UTF-8" in latin[1]["message"], latin


@pytest.mark.parametrize(
    "charset", ["latin-1", "ISO-8859-1", "utf-16", "UTF-16LE", '"latin1"', "us-ascii"]
)
def test_json_in_another_charset_than_utf8_is_a_415(client: TestClient, charset: str) -> None:
    codec = charset.strip('"').replace("us-ascii", "ascii")
    content = json.dumps({**INTERACTION, "user_id": "Zoe"}).encode(codec)
    content_type = f"application/json; charset={charset}"
    status, body, _ = _send(client, ROUTES[0], content, {"Content-Type": content_type})
    assert status == 415, body
    assert body["message"] == (
        f"body: Content-Type is {content_type!r}: JSON must be UTF-8; send it as UTF-8, "
        "with charset=utf-8 or no charset"
    )


@pytest.mark.parametrize(
    "headers",
    [
        JSON,
        {"Content-Type": "application/json; charset=utf-8"},
        {"Content-Type": "application/json;charset=UTF-8"},
        {"Content-Type": "application/json; charset=utf8"},
        {"Content-Type": 'application/json; charset="utf-8"'},
        {**JSON, "Content-Encoding": "identity"},
        {**JSON, "Content-Encoding": "IDENTITY"},
    ],
)
def test_a_body_as_clients_send_it_is_answered_as_before(
    client: TestClient, headers: dict[str, str]
) -> None:
    content = json.dumps(INTERACTION, ensure_ascii=False).encode()
    status, body, _ = _send(client, ROUTES[0], content, headers)
    assert (status, body) == (201, {"accepted": 1})


def test_a_route_that_reads_no_body_ignores_how_one_is_encoded(client: TestClient) -> None:
    """The check is made when a route reads its body, as the body limit's on a stream: a
    GET or a DELETE answers as it would have."""
    gzipped = {"Content-Encoding": "gzip", "Content-Type": "application/json; charset=latin-1"}
    listed = client.get("/v1/users/u1/recommendations", headers=gzipped)
    assert listed.status_code == 200, listed.text
    removed = client.request(
        "DELETE",
        "/v1/items/never-added",
        content=gzip.compress(b"{}"),
        headers={**gzipped, **ADMIN},
    )
    assert (removed.status_code, removed.json()["error"]) == (404, "unknown_item")


def _nonce(client: TestClient) -> str:
    found = re.search(r'name="nonce" value="([^"]+)"', client.get("/dashboard/login").text)
    assert found, "no login form"
    return found.group(1)


def test_a_dashboard_form_it_would_misread_gets_the_dashboards_415(client: TestClient) -> None:
    form = "application/x-www-form-urlencoded"
    for headers, encode in (
        ({"Content-Type": form, "Content-Encoding": "gzip"}, gzip.compress),
        ({"Content-Type": f"{form}; charset=latin-1"}, lambda raw: raw),
    ):
        content = encode(f"token={TOKEN}&nonce={_nonce(client)}".encode())
        page = client.post("/dashboard/login", content=content, headers=headers)
        assert page.status_code == 415 and "text/html" in page.headers["content-type"]
        assert "<html" in page.text and '"request_id"' not in page.text
        text = html.unescape(page.text)
        assert "Content-Encoding is 'gzip'" in text or "forms must be UTF-8" in text, text
    # The form as a browser sends it (charset=utf-8 as some do) logs in as before.
    content = f"token={TOKEN}&nonce={_nonce(client)}".encode()
    utf8 = {"Content-Type": f"{form}; charset=UTF-8"}
    answer = client.post("/dashboard/login", content=content, headers=utf8, follow_redirects=False)
    assert answer.status_code == 303, answer.text[:300]


def test_a_415_quotes_long_headers_clipped(client: TestClient) -> None:
    """A 60 KB Content-Encoding or Content-Type was quoted whole in the 415's message."""
    long = "x" * 60_000
    for headers in (
        {**JSON, "Content-Encoding": "gzip, " + long},
        {"Content-Type": "application/json; charset=latin-1; q=" + long},
    ):
        r = client.post("/v1/interactions", content=b"{}", headers=headers)
        assert r.status_code == 415, r.text[:200]
        assert len(r.content) < 600, len(r.content)
        assert "xxx..." in r.json()["message"]
