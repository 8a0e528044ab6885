"""The Experiments page in process: list, create and stop through the admin API's handlers
(its 4xx messages shown on the page), CSRF, and the results panel after traffic."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ClientFactory
from tests.app.dashboard.test_pages import TOKEN, _csrf, _login

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def dash(make_client: ClientFactory) -> TestClient:
    client = make_client(admin_token=TOKEN, default_model="ease", impression_flush_s=0.05)
    assert _login(client) == 303
    return client


def _form(name: str, *rows: tuple[str, str, str, str], **extra: str) -> dict[str, Any]:
    return {
        "name": name,
        "variant_name": [r[0] for r in rows],
        "variant_model": [r[1] for r in rows],
        "variant_version": [r[2] for r in rows],
        "variant_weight": [r[3] for r in rows],
        **extra,
    }


POP_VS_EASE = (("control", "popularity", "", "1"), ("ease", "ease", "1", "1"), ("", "", "", ""))


def test_empty_page_and_the_form_has_labelled_controls(dash: TestClient) -> None:
    page = dash.get("/dashboard/experiments")
    assert page.status_code == 200
    assert "No experiments yet" in page.text
    assert 'aria-current="page">Experiments<' in page.text
    for control_id in ["exp-name", "exp-window", "v1-name", "v1-model", "v2-version", "v3-weight"]:
        assert f'<label for="{control_id}"' in page.text or f'for="{control_id}">' in page.text
        assert f'id="{control_id}"' in page.text


def test_create_refuses_without_csrf_and_shows_the_apis_422(dash: TestClient) -> None:
    token = _csrf(dash.get("/dashboard/experiments").text)
    no_csrf = dash.post("/dashboard/experiments", data=_form("ab1", *POP_VS_EASE))
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    unknown = dash.post(
        "/dashboard/experiments",
        data=_form("ab1", ("a", "popularity", "", "1"), ("b", "nope", "", "1"), csrf_token=token),
    )
    api = dash.post(
        "/admin/experiments",
        json={
            "name": "ab1",
            "variants": [
                {"name": "a", "model": "popularity", "weight": 1},
                {"name": "b", "model": "nope", "weight": 1},
            ],
        },
        headers=AUTH,
    )
    assert unknown.status_code == api.status_code == 422
    alert = re.search(r'<p class="problem" role="alert">([^<]*)</p>', unknown.text)
    assert alert and alert.group(1) == api.json()["message"].replace("'", "&#39;")
    assert 'value="nope" selected' in unknown.text  # the form keeps what was typed
    bad_weight = dash.post(
        "/dashboard/experiments",
        data=_form(
            "ab1", ("a", "popularity", "", "1"), ("b", "ease", "", "lots"), csrf_token=token
        ),
    )
    assert bad_weight.status_code == 422 and "variants.1.weight" in bad_weight.text
    one_variant = dash.post(
        "/dashboard/experiments", data=_form("ab1", ("a", "popularity", "", "1"), csrf_token=token)
    )
    assert one_variant.status_code == 422 and "variants" in one_variant.text
    assert dash.get("/admin/experiments", headers=AUTH).json()["experiments"] == []


def test_create_traffic_results_and_stop(dash: TestClient) -> None:
    token = _csrf(dash.get("/dashboard/experiments").text)
    created = dash.post(
        "/dashboard/experiments",
        data=_form("ab1", *POP_VS_EASE, window_minutes="5", csrf_token=token),
    )
    assert created.status_code == 200, created.text[-2000:]
    assert "Experiment ab1 started" in created.text
    assert 'data-experiment="ab1" data-status="running"' in created.text
    assert 'hx-get="/dashboard/experiments/ab1/results"' in created.text  # polled while running
    got = dash.get("/admin/experiments/ab1", headers=AUTH).json()
    assert got["window_minutes"] == 5 and [v["model"] for v in got["variants"]] == [
        "popularity",
        "ease",
    ]

    clicks = {"control": 0, "ease": 0}
    for n in range(12):
        user = f"dash-user-{n}"
        body = dash.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
        variant = body["variant"]
        if n % 2 == 0:
            answer = dash.post(
                "/v1/interactions",
                json={
                    "user_id": user,
                    "item_id": body["items"][0]["item_id"],
                    "type": "click",
                    "recommendation_id": body["recommendation_id"],
                },
            )
            assert answer.status_code == 201, answer.text
            clicks[variant] += 1
    panel = dash.get("/dashboard/experiments/ab1/results")
    assert panel.status_code == 200
    for variant, count in clicks.items():
        assert f'data-testid="clicks-{variant}">{count}<' in panel.text
    assert (
        sum(int(m) for m in re.findall(r'data-testid="impressions-[a-z]+">(\d+)<', panel.text))
        == 12
    )
    assert panel.text.count('<script type="application/json" id="experiment-chart-') == 4
    # each rate's comparison with control has a column of its own, "–" until there is data
    assert "Conversion rate vs control</th>" in panel.text
    result = dash.get("/admin/experiments/ab1", headers=AUTH).json()
    versus = result["variants"][1]["vs_control"]
    conversion = panel.text.split('data-testid="conversion-vs-control-ease">')[1].split("</td>")[0]
    assert f"{100 * versus['conversion']['conversion_rate_diff']:+.2f} pt" in conversion
    assert f"p = {versus['conversion']['p_value']:.3g}" in conversion
    assert panel.text.split('data-testid="conversion-vs-control-control">')[1].startswith("–")
    assert 'data-testid="srm"' in panel.text

    stopped = dash.post("/dashboard/experiments/ab1/stop", data={"csrf_token": token})
    assert stopped.status_code == 200 and "Experiment ab1 stopped" in stopped.text
    assert 'data-experiment="ab1" data-status="stopped"' in stopped.text
    assert "hx-get=" not in stopped.text.split('id="experiment-results"')[1].split(">")[0]
    again = dash.post("/dashboard/experiments/ab1/stop", data={"csrf_token": token})
    assert again.status_code == 409
    assert "experiment &#39;ab1&#39; is already stopped" in again.text
    assert dash.post("/dashboard/experiments/ab1/stop").status_code == 403  # no CSRF token


def test_unknown_experiment_is_said_on_the_page(dash: TestClient) -> None:
    page = dash.get("/dashboard/experiments", params={"name": "nope"})
    assert page.status_code == 200 and "nope" in page.text and 'role="alert"' in page.text
    panel = dash.get("/dashboard/experiments/nope/results")
    assert 'role="alert"' in panel.text
