"""A/B experiments through the HTTP API on the real Postgres and Redis: the admin API
and its bad input, assignment (sticky, named in responses and impressions), stopping
returns traffic to the default model, and the results after simulated traffic."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from app.core.db import upgrade_database
from app.db_models import Impression

TOKEN = "experiments-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POP_VS_EASE = {
    "name": "ab1",
    "variants": [
        {"name": "control", "model": "popularity", "weight": 1},
        {"name": "ease", "model": "ease", "version": "1", "weight": 1},
    ],
}


@pytest.fixture
def admin(
    make_client: Callable[..., TestClient],
    postgres_url: str,
    redis_url: str,
    redis_namespace: str,
) -> Iterator[TestClient]:
    """A server on the session's Postgres (experiments cleared) and Redis.

    The experiments are cleared after the test as well: the session database is
    shared, and an experiment left running would assign other tests' requests.
    """
    upgrade_database(postgres_url)
    _clear_experiments(postgres_url)
    yield make_client(
        database_url=postgres_url,
        redis_url=redis_url,
        cache_namespace=redis_namespace,
        admin_token=TOKEN,
        impression_flush_s=0.05,
    )
    _clear_experiments(postgres_url)


def _clear_experiments(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as conn:  # the session database is shared by the suite's tests
        conn.exec_driver_sql("DELETE FROM experiments")
        conn.exec_driver_sql("DELETE FROM impressions WHERE experiment IS NOT NULL")
    engine.dispose()


def _create(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/admin/experiments", json=body, headers=AUTH)


def _recs(client: TestClient, user: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/users/{user}/recommendations", params={"k": 5, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --------------------------------------------------------------------------- admin API


def test_create_list_get_and_stop(admin: TestClient) -> None:
    created = _create(admin, POP_VS_EASE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["status"], body["control"]) == ("ab1", "running", "control")
    assert [v["name"] for v in body["variants"]] == ["control", "ease"]
    listed = admin.get("/admin/experiments", headers=AUTH).json()["experiments"]
    assert [e["name"] for e in listed] == ["ab1"]
    got = admin.get("/admin/experiments/ab1", headers=AUTH).json()
    assert got["status"] == "running"
    assert got["variants"][0]["version"] == "1"  # production of popularity, none served yet
    assert "vs_control" in got["variants"][1] and got["srm"]["ok"] is True
    stopped = admin.post("/admin/experiments/ab1/stop", headers=AUTH)
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    again = admin.post("/admin/experiments/ab1/stop", headers=AUTH)
    assert (again.status_code, again.json()["error"]) == (409, "experiment_conflict")


def _variants(*variants: dict[str, Any]) -> dict[str, Any]:
    return {"name": "bad", "variants": list(variants)}


POP = {"name": "a", "model": "popularity", "weight": 1}


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (_variants(POP, {"name": "b", "model": "nope", "weight": 1}), 422, "unknown model 'nope'"),
        (_variants(POP, {"name": "b", "model": "ease", "version": 99, "weight": 1}), 422, "99"),
        (_variants(POP, {"name": "b", "model": "mult-dae", "weight": 1}), 422, "no production"),
        (_variants({**POP, "weight": 0}, {**POP, "name": "b", "weight": 0}), 422, "positive"),
        (_variants(POP, {**POP, "name": "b", "weight": -1}), 422, ">= 0"),
        (
            _variants({**POP, "weight": 1e308}, {**POP, "name": "b", "weight": 1e308}),
            422,
            "sum to a finite number",
        ),
        (_variants(POP, {**POP, "weight": 2}), 422, "unique"),
        (_variants({**POP, "weight": 0}, {**POP, "name": "b"}), 422, "control 'a' has weight 0"),
        (_variants(POP), 422, "variants"),
        ({**_variants(POP, {**POP, "name": "b"}), "control": "zzz"}, 422, "control 'zzz'"),
        (_variants(POP, {**POP, "name": "b", "weight": "1"}), 422, "weight"),
        ({"name": "has space", "variants": [POP, {**POP, "name": "b"}]}, 422, "name"),
        ({**_variants(POP, {**POP, "name": "b"}), "window_minutes": 5e-324}, 422, "one second"),
        ({**_variants(POP, {**POP, "name": "b"}), "window_minutes": 0}, 422, "one second"),
        ({**_variants(POP, {**POP, "name": "b"}), "window_minutes": 1e6}, 422, "43200"),
        (
            {**_variants(POP, {**POP, "name": "b"}), "mixing_sd": 1e-200},
            422,
            "greater than or equal to 0.000001",
        ),
    ],
)
def test_bad_definitions_are_clear_4xx(
    admin: TestClient, body: dict[str, Any], status: int, says: str
) -> None:
    response = _create(admin, body)
    assert response.status_code == status, response.text
    assert says in response.text
    assert admin.get("/admin/experiments", headers=AUTH).json()["experiments"] == []


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (99, "variant 'b': model 'ease' has no version 99 (versions: 1)"),
        ("0", "variant 'b': invalid version '0': a version is a positive integer"),
    ],
)
def test_a_version_that_does_not_exist_is_said_once(
    admin: TestClient, version: int | str, message: str
) -> None:
    """One sentence, not the store's message wrapped in a paraphrase of itself
    ("model 'ease' has no version '99' (model 'ease' has no version 99 (...))")."""
    body = _variants(POP, {"name": "b", "model": "ease", "version": version, "weight": 1})
    response = _create(admin, body)
    assert (response.status_code, response.json()["message"]) == (422, message)


def test_duplicate_name_and_a_second_running_experiment_are_conflicts(admin: TestClient) -> None:
    assert _create(admin, POP_VS_EASE).status_code == 201
    duplicate = _create(admin, POP_VS_EASE)
    assert (duplicate.status_code, duplicate.json()["error"]) == (409, "experiment_conflict")
    second = _create(admin, {**POP_VS_EASE, "name": "ab2"})
    assert second.status_code == 409 and "'ab1' is running" in second.json()["message"]
    admin.post("/admin/experiments/ab1/stop", headers=AUTH)
    assert _create(admin, {**POP_VS_EASE, "name": "ab2"}).status_code == 201
    assert _create(admin, {**POP_VS_EASE, "name": "ab1"}).status_code == 409  # name kept


def test_unknown_experiment_is_404_and_the_token_is_required(admin: TestClient) -> None:
    assert admin.get("/admin/experiments/nope", headers=AUTH).status_code == 404
    assert admin.post("/admin/experiments/nope/stop", headers=AUTH).status_code == 404
    assert admin.get("/admin/experiments").status_code == 401
    assert admin.post("/admin/experiments", json=POP_VS_EASE).status_code == 401


# --------------------------------------------------------------------------- assignment


def test_assignment_is_sticky_named_in_responses_and_impressions(
    admin: TestClient, postgres_url: str
) -> None:
    assert _create(admin, POP_VS_EASE).status_code == 201
    models = {"control": "popularity", "ease": "ease"}
    seen: dict[str, str] = {}
    ids = []
    for n in range(20):
        answer = _recs(admin, f"u{n}")
        assert answer["experiment"] == "ab1"
        assert answer["model"] == models[answer["variant"]]
        seen[f"u{n}"] = answer["variant"]
        ids.append(answer["recommendation_id"])
    assert set(seen.values()) == {"control", "ease"}  # 20 users: both variants get some
    for n in range(20):  # sticky
        assert _recs(admin, f"u{n}")["variant"] == seen[f"u{n}"]
    named = _recs(admin, "u0", model="mult-vae")  # a request naming a model is not in it
    assert named["model"] == "mult-vae" and "experiment" not in named
    session = admin.post(
        "/v1/recommendations", json={"history": [{"item_id": "2"}], "session_id": "s-9"}
    ).json()
    assert session["experiment"] == "ab1" and "user_id" not in session
    again = admin.post("/v1/recommendations", json={"history": [], "session_id": "s-9"}).json()
    assert again["variant"] == session["variant"]
    anonymous = admin.post("/v1/recommendations", json={"history": [{"item_id": "2"}]}).json()
    assert "experiment" not in anonymous  # nobody to keep in a variant
    admin.app.state.services.impressions.flush()  # type: ignore[attr-defined]
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Impression.user_id, Impression.experiment, Impression.variant,
                   Impression.latency_ms).where(Impression.id.in_(ids))
        ).all()  # fmt: skip
    engine.dispose()
    assert len(rows) == 20
    for user_id, experiment, variant, latency_ms in rows:
        assert (experiment, variant) == ("ab1", seen[user_id])
        assert latency_ms is not None and latency_ms > 0


def test_a_session_and_the_user_with_the_same_id_are_two_units(admin: TestClient) -> None:
    """Assignment hashes the bare id, so session "u0" and user "u0" share a variant; the
    results count them apart, and an ad-hoc list with a ``user_id`` as that user's."""
    assert _create(admin, POP_VS_EASE).status_code == 201
    user = _recs(admin, "u0")
    history = {"history": [{"item_id": "2"}], "k": 5}
    session = admin.post("/v1/recommendations", json={**history, "session_id": "u0"}).json()
    named = {**history, "user_id": "u0", "session_id": "s-u0"}
    as_user = admin.post("/v1/recommendations", json=named).json()
    assert user["variant"] == session["variant"] == as_user["variant"]
    admin.app.state.services.impressions.flush()  # type: ignore[attr-defined]
    result = admin.get("/admin/experiments/ab1", headers=AUTH).json()
    counted = {v["name"]: (v["users"], v["impressions"]) for v in result["variants"]}
    assert counted[user["variant"]] == (2, 3)


def test_a_click_counts_for_a_list_of_its_user_or_of_a_session(admin: TestClient) -> None:
    """A session's later logged-in user claims the session's list by its
    ``recommendation_id``: the click counts in the list's variant. The same user naming
    another user's lists (one written, one just served: queued unless the writer, every
    50 ms, was quicker) is not their click."""
    assert _create(admin, POP_VS_EASE).status_code == 201
    body = {"history": [{"item_id": "2"}], "k": 5, "session_id": "s-claimed"}
    session = admin.post("/v1/recommendations", json=body).json()
    written = _recs(admin, "u-owner")
    admin.app.state.services.impressions.flush()  # type: ignore[attr-defined]
    served = _recs(admin, "u-owner")
    clicks = [
        {"user_id": "u-logged-in", "item_id": named["items"][0]["item_id"], "type": "click",
         "recommendation_id": named["recommendation_id"]}
        for named in (session, written, served)
    ]  # fmt: skip
    assert admin.post("/v1/interactions", json={"interactions": clicks}).status_code == 201
    result = admin.get("/admin/experiments/ab1", headers=AUTH).json()
    expected = {"control": 0, "ease": 0}
    expected[session["variant"]] = 1
    assert {v["name"]: v["clicks"] for v in result["variants"]} == expected
    metrics = admin.get("/metrics").text
    counted = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith('genrec_experiment_clicks_total{experiment="ab1"')
    ]
    assert counted == [1.0]
    assert 'genrec_attribution_refused_total{reason="other_user"} 2.0' in metrics


def test_stopping_returns_traffic_to_the_default_model(admin: TestClient) -> None:
    assert _create(admin, POP_VS_EASE).status_code == 201
    assert {_recs(admin, f"u{n}")["model"] for n in range(20)} == {"popularity", "ease"}
    assert admin.post("/admin/experiments/ab1/stop", headers=AUTH).status_code == 200
    after = [_recs(admin, f"u{n}") for n in range(20)]
    assert {a["model"] for a in after} == {"mult-vae"}  # the default model
    assert all("experiment" not in a and "variant" not in a for a in after)


def test_a_pinned_version_is_served_besides_production(admin: TestClient) -> None:
    """mult-dae version 1 is stored but never promoted: a variant may still name it."""
    body = {
        "name": "pinned",
        "variants": [
            {"name": "control", "model": "popularity", "weight": 1},
            {"name": "dae", "model": "mult-dae", "version": 1, "weight": 1},
        ],
    }
    assert _create(admin, body).status_code == 201
    answers = [_recs(admin, f"u{n}") for n in range(20)]
    dae = [a for a in answers if a["variant"] == "dae"]
    assert dae and all((a["model"], a["version"]) == ("mult-dae", "1") for a in dae)
    holder = admin.app.state.services.holder  # type: ignore[attr-defined]
    assert holder.peek("mult-dae") is None  # pinned, not installed as production
    admin.post("/admin/experiments/pinned/stop", headers=AUTH)
    assert holder._pinned == {}  # released when no running variant needs it
    result = admin.get("/admin/experiments/pinned", headers=AUTH).json()
    assert result["variants"][1]["pinned"] is True and result["variants"][1]["version"] == "1"


def test_a_variant_that_cannot_be_served_falls_back_to_the_default_model(
    admin: TestClient, store_dir: Path
) -> None:
    """A pinned version that fails its checksum: its users get the default model,
    outside the experiment, counted; the other variant keeps serving."""
    tensors = next((store_dir / "mult-dae" / "versions" / "1").glob("*.safetensors"))
    raw = bytearray(tensors.read_bytes())
    raw[-1] ^= 0xFF
    tensors.write_bytes(bytes(raw))
    body = {
        "name": "broken",
        "variants": [
            {"name": "control", "model": "popularity", "weight": 1},
            {"name": "dae", "model": "mult-dae", "version": 1, "weight": 1},
        ],
    }
    assert _create(admin, body).status_code == 201
    answers = [_recs(admin, f"u{n}") for n in range(20)]
    outside = [a for a in answers if "experiment" not in a]
    assert outside and all(a["model"] == "mult-vae" for a in outside)
    inside = [a for a in answers if "experiment" in a]
    assert inside and all(a["variant"] == "control" for a in inside)
    metrics = admin.get("/metrics").text
    line = 'genrec_experiment_fallbacks_total{experiment="broken",variant="dae"}'
    assert f"{line} {float(len(outside))}" in metrics


# --------------------------------------------------------------------------- results


def test_results_count_what_the_simulated_traffic_did(admin: TestClient) -> None:
    """Users click the first item of every list in ease and the second of every other
    list in control; the results must say exactly that."""
    assert _create(admin, POP_VS_EASE).status_code == 201
    served: dict[str, list[dict[str, Any]]] = {"control": [], "ease": []}
    for n in range(30):
        answer = _recs(admin, f"u{n}")
        served[answer["variant"]].append(answer)
    clicks: list[dict[str, Any]] = []
    for answer in served["ease"]:
        item = answer["items"][0]["item_id"]
        for kind in ("click", "click", "purchase"):  # a double click counts once
            clicks.append(
                {"user_id": answer["user_id"], "item_id": item, "type": kind,
                 "recommendation_id": answer["recommendation_id"]}
            )  # fmt: skip
    for n, answer in enumerate(served["control"]):
        if n % 2 == 0:
            clicks.append(
                {"user_id": answer["user_id"], "item_id": answer["items"][1]["item_id"],
                 "type": "click", "recommendation_id": answer["recommendation_id"]}
            )  # fmt: skip
        else:  # stamped years before its list was served: it answers no list, not counted
            clicks.append(
                {"user_id": answer["user_id"], "item_id": answer["items"][1]["item_id"],
                 "type": "click", "recommendation_id": answer["recommendation_id"],
                 "timestamp": "2020-01-01T00:00:00Z"}
            )  # fmt: skip
    clicks.append(  # an item the list did not show: not a click on a served item
        {"user_id": served["ease"][0]["user_id"], "item_id": "nope", "type": "click",
         "recommendation_id": served["ease"][0]["recommendation_id"]}
    )  # fmt: skip
    for kind in ("click", "purchase"):  # another user holding a list's id: not its click
        clicks.append(
            {"user_id": "not-the-lists-user", "item_id": served["ease"][0]["items"][1]["item_id"],
             "type": kind, "recommendation_id": served["ease"][0]["recommendation_id"]}
        )  # fmt: skip
    admin.app.state.services.impressions.flush()  # type: ignore[attr-defined]
    assert admin.post("/v1/interactions", json={"interactions": clicks}).status_code == 201
    result = admin.get("/admin/experiments/ab1", headers=AUTH).json()
    by_name = {v["name"]: v for v in result["variants"]}
    ease, control = by_name["ease"], by_name["control"]
    n_ease, n_control = len(served["ease"]), len(served["control"])
    n_control_clicks = (n_control + 1) // 2
    assert (ease["users"], ease["impressions"], ease["items_served"]) == (
        n_ease,
        n_ease,
        5 * n_ease,
    )
    assert (ease["clicks"], ease["conversions"]) == (n_ease, n_ease)
    assert ease["ctr"] == pytest.approx(1 / 5) and ease["list_ctr"] == pytest.approx(1.0)
    assert ease["conversion_rate"] == pytest.approx(1 / 5) and ease["mrr"] == pytest.approx(1.0)
    assert control["clicks"] == n_control_clicks and control["conversions"] == 0
    assert control["ctr"] == pytest.approx(n_control_clicks / (5 * n_control))
    assert control["mrr"] == pytest.approx(0.5 * n_control_clicks / n_control)
    assert ease["latency_ms"]["p50"] > 0 and ease["latency_ms"]["p99"] >= ease["latency_ms"]["p50"]
    versus = ease["vs_control"]
    assert versus["ctr_diff"] == pytest.approx(ease["ctr"] - control["ctr"])
    assert versus["ci95"][0] <= versus["ctr_diff"] <= versus["ci95"][1]
    assert 0 <= versus["p_value"] <= 1 and "mSPRT" in versus["method"]
    conversion = versus["conversion"]  # the same test on the conversion rate
    assert conversion["conversion_rate_diff"] == pytest.approx(
        ease["conversion_rate"] - control["conversion_rate"]
    )
    assert conversion["ci95"][0] <= conversion["conversion_rate_diff"] <= conversion["ci95"][1]
    assert 0 <= conversion["p_value"] <= conversion["p_value_adjusted"] <= 1
    assert conversion["comparisons"] == 1 and "conversion-rate" in conversion["method"]
    assert "vs_control" not in control or control["vs_control"] is None
    assert 0 <= result["srm"]["p_value"] <= 1
    metrics = admin.get("/metrics").text
    assert 'genrec_experiment_impressions_total{experiment="ab1",model="ease"' in metrics
    clicks_line = next(
        line
        for line in metrics.splitlines()
        if line.startswith('genrec_experiment_clicks_total{experiment="ab1",model="ease"')
    )
    assert float(clicks_line.split()[-1]) == 2 * n_ease  # raw events: double clicks twice
