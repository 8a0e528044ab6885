"""The Overview counts the serving API: the dashboard's and the docs' own requests (pages,
polls, static files, /openapi.json) are one "other" row, out of the request-rate chart, and
static files are labelled by their mount instead of passing as "unmatched"."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.core.metrics import Metrics
from app.dashboard.metrics_view import MIN_SPAN_S, OTHER_LABEL, overview, rate_chart, read_registry
from tests.app.conftest import ClientFactory
from tests.app.dashboard.login import log_in

TOKEN = "dash-overview-token-4e7c"
API = "/v1/users/{user_id}/recommendations"
OWN = [
    "/dashboard/overview/panel",
    "/dashboard/static/{path}",
    "/docs/assets/{path}",
    "/openapi.json",
]


def _observe(metrics: Metrics, route: str, n: int, seconds: float = 0.01) -> None:
    for _ in range(n):
        metrics.request_latency.labels(route=route, method="GET", status="200").observe(seconds)


def test_own_traffic_is_one_row_and_not_in_the_rate_chart() -> None:
    metrics = Metrics()
    _observe(metrics, API, 4)
    _observe(metrics, "unmatched", 1)  # a client asking for a path no route serves
    first = read_registry(metrics.registry, at=0.0)
    _observe(metrics, API, 10)
    for route in OWN:
        _observe(metrics, route, 60, seconds=0.4)
    later = read_registry(metrics.registry, at=2 * MIN_SPAN_S)
    rows = overview(later, first).endpoints
    assert [(r.route, r.requests, r.grouped) for r in rows] == [
        (API, 14, False),
        ("unmatched", 1, False),
        (OTHER_LABEL, 60 * len(OWN), True),
    ]
    assert rows[-1].rate == pytest.approx(60 * len(OWN) / (2 * MIN_SPAN_S))
    chart = rate_chart([first, later])
    assert chart is not None
    assert chart["series"]["requests/s"] == [pytest.approx(10 / (2 * MIN_SPAN_S), abs=1e-3)]
    assert (chart["x_label"], chart["y_label"]) == ("seconds ago", "requests per second")


def test_static_files_and_the_openapi_document_are_labelled_by_route(
    make_client: ClientFactory,
) -> None:
    dash: TestClient = make_client(admin_token=TOKEN, default_model="ease")
    log_in(dash, TOKEN)
    for path in [
        "/dashboard/static/dashboard.css",
        "/dashboard/static/no-such.css",
        "/docs/assets/swagger-ui.css",
        "/openapi.json",
        "/no-such-path",
    ]:
        dash.get(path)
    routes = {
        route for route, _ in read_registry(dash.app.state.services.metrics.registry).requests
    }  # type: ignore[attr-defined]
    assert {"/dashboard/static/{path}", "/docs/assets/{path}", "/openapi.json"} <= routes
    assert "unmatched" in routes  # /no-such-path, and nothing else
    panel = dash.get("/dashboard/overview/panel").text
    table = panel.split('data-testid="endpoints"')[1]
    assert "<code>unmatched</code>" in table
    assert "/dashboard/static" not in table and "/openapi.json" not in table
    assert f'data-testid="other-routes"><td>{OTHER_LABEL}</td>' in table
    # Pages name their icon, so browsers do not ask for /favicon.ico (a 404 per page).
    icon = '<link rel="icon" href="/dashboard/static/favicon.svg" type="image/svg+xml">'
    assert icon in dash.get("/dashboard/overview").text
    assert dash.get("/dashboard/static/favicon.svg").status_code == 200
