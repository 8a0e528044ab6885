"""Strings a client writes through the API reach the operator's pages as text, never markup.

Item ids, titles, texts and attributes (``PUT /v1/items/{id}``), user and item ids of
logged events (``POST /v1/interactions``, open to anyone without API keys) and a job's
fields (its error, log, progress, gate, worker) are shown on the dashboard's pages. Each
holds markup that would add an element carrying ``data-pwn`` (an ``<img onerror>``, a
``<b>`` after breaking out of an attribute, a ``</script>``, an htmx element that would
poll with the page's CSRF header, a ``<style>``): the pages must print it escaped, and
parsed, hold no element it added. Autoescaping is what makes this hold; a ``|safe`` or
``Markup`` on one of these values would show here.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from app.core.db import session_scope
from tests.app.conftest import ClientFactory
from tests.app.dashboard.job_rows import job_row
from tests.app.dashboard.login import log_in

TOKEN = "dash-hostile-token-7a2d"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE = (
    "X\"><img src=x data-pwn=1 onerror=alert(1)>'><b data-pwn=2>`${alert(3)}`"
    '</script><b data-pwn=3><!--<div hx-get="/dashboard/overview" hx-trigger="load" '
    "data-pwn=4></div>{{7*7}}<style data-pwn=5>*{display:none}</style>"
)


class _Elements(HTMLParser):
    """The start tags of a page, with their attribute names."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, set[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name for name, _ in attrs}))


def _assert_shown_as_text(page: str, where: str) -> None:
    parser = _Elements()
    parser.feed(page)
    added = [tag for tag, names in parser.tags if "data-pwn" in names or tag in ("img", "style")]
    assert not added, (where, added)
    # Jinja writes quotes as &#34; and &#39;: compare with the other characters escaped.
    quotes_unescaped = page.replace("&#34;", '"').replace("&#39;", "'")
    printed = html.escape(HOSTILE, quote=False)
    assert printed in quotes_unescaped, (where, "not on the page: this would prove nothing")


@pytest.fixture
def dash(make_client: ClientFactory) -> TestClient:
    client = make_client(admin_token=TOKEN, default_model="ease")
    item = {"title": HOSTILE, "text": HOSTILE, "attributes": {"note": HOSTILE, "tags": [HOSTILE]}}
    for item_id in (HOSTILE, "3"):
        answer = client.put(f"/v1/items/{quote(item_id, safe='')}", json=item, headers=ADMIN)
        assert answer.status_code in (200, 201), answer.text
    events = [
        {"user_id": HOSTILE, "item_id": HOSTILE, "rating": 5},
        {"user_id": HOSTILE, "item_id": "3", "rating": 4},
    ]
    logged = client.post("/v1/interactions", json={"interactions": events})
    assert logged.status_code == 201, logged.text
    job = job_row(
        status="failed",
        error=HOSTILE,
        log_tail=HOSTILE,
        progress={"epoch": 1, "epochs": 3, "note": HOSTILE},
        gate={"reason": HOSTILE},
        worker_id=HOSTILE,
        params={"l2": HOSTILE},
    )
    with session_scope(client.app.state.services.sessions) as session:  # type: ignore[attr-defined]
        session.add(job)
    log_in(client, TOKEN)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/catalog?q=" + quote("<img", safe=""),
        "/dashboard/catalog/items/" + quote(HOSTILE, safe=""),
        "/dashboard/catalog/items/3",
        "/dashboard/explore?user=" + quote(HOSTILE, safe="") + "&item=3",
        "/dashboard/jobs",
        "/dashboard/jobs/list?open=1",
        "/dashboard/no-such-page/" + quote(HOSTILE, safe=""),
    ],
    ids=["search", "item-id", "item-content", "explore", "jobs", "jobs-poll", "error-page"],
)
def test_client_written_strings_are_shown_as_text(dash: TestClient, path: str) -> None:
    answer = dash.get(path)
    assert answer.status_code in (200, 404), (path, answer.text[:500])
    _assert_shown_as_text(answer.text, path)
