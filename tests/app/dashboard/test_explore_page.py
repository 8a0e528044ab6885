"""Explore says what is true of a user without history, takes ids as typed (as the API does),
and an experiment without traffic shows no rates ("–", not 0.00%)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ClientFactory
from tests.app.dashboard.login import log_in

TOKEN = "dash-explore-token-5d3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def dash(make_client: ClientFactory) -> TestClient:
    client = make_client(admin_token=TOKEN, default_model="ease")
    log_in(client, TOKEN)
    return client


def _history(page: str) -> str:
    return page.split('data-testid="history"')[1].split("</div>")[0]


def test_a_user_whose_events_are_all_on_unknown_items_is_not_called_new(dash: TestClient) -> None:
    events = [{"user_id": "odd-items-user", "item_id": f"unknown-{n}"} for n in range(13)]
    assert dash.post("/v1/interactions", json={"interactions": events}).status_code == 201
    history = _history(dash.get("/dashboard/explore", params={"user": "odd-items-user"}).text)
    assert "a new user" not in history
    assert "13 logged events, none of them on an item ease knows" in history
    fresh = _history(dash.get("/dashboard/explore", params={"user": "never-seen"}).text)
    assert "No history: a new user (no logged events" in fresh


def test_ids_are_taken_as_typed(dash: TestClient) -> None:
    known = _history(dash.get("/dashboard/explore", params={"user": "u1"}).text)
    assert "(12 items, as ease sees it)" in known
    spaced = dash.get("/dashboard/explore", params={"user": " u1 "}).text
    assert '<h2 id="user-h">User <span class="id"> u1 </span></h2>' in spaced
    assert "begins or ends with white space" in spaced
    assert "No history: a new user" in _history(spaced)  # " u1 " is not u1, as on the API
    api = dash.get("/v1/users/%20u1%20/recommendations").json()
    assert api["fallback"] is True
    assert 'value=" u1 "' in spaced  # the field keeps what was typed
    blank = dash.get("/dashboard/explore", params={"user": "   "}).text
    assert "user_id is only white space (3 characters)" in blank  # the API's own 422 message


def test_rates_of_an_experiment_without_traffic_are_dashes(dash: TestClient) -> None:
    body = {
        "name": "quiet",
        "variants": [
            {"name": "control", "model": "ease", "weight": 1},
            {"name": "vae", "model": "mult-vae", "weight": 1},
        ],
    }
    assert dash.post("/admin/experiments", json=body, headers=AUTH).status_code == 201
    panel = dash.get("/dashboard/experiments/quiet/results").text
    for variant in ("control", "vae"):
        row = panel.split(f'<tr data-variant="{variant}">')[1].split("</tr>")[0]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        # model, weight, users, impressions, clicks, conversions, CTR, conversion, MRR, latency, vs
        assert [c.strip() for c in cells[6:9]] == ["–", "–", "–"], cells
        assert "0.00%" not in row and "0.000" not in row
        assert cells[-1].strip() == "–"


def test_an_erased_user_is_neither_suggested_nor_shown_with_their_training_history(
    dash: TestClient,
) -> None:
    page = dash.get("/dashboard/explore").text
    assert '<option value="u1">' in page
    assert dash.delete("/v1/users/u1", headers=AUTH).status_code == 200
    page = dash.get("/dashboard/explore").text
    assert '<option value="u1">' not in page and '<option value="u2">' in page
    history = _history(dash.get("/dashboard/explore", params={"user": "u1"}).text)
    assert "No history: a new user" in history
