"""Query-string models: the same validation and documentation as FastAPI's ``Query()``."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from starlette.datastructures import QueryParams

from app.api.query import openapi_parameters, parse_query
from app.schemas import RecommendationQuery


def test_repeated_parameters_become_lists_and_unknown_ones_are_ignored() -> None:
    query = parse_query(
        RecommendationQuery,
        QueryParams("k=3&exclude=a&exclude=b&include=c&exclude_seen=false&utm_source=x"),
    )
    assert (query.k, query.exclude, query.include, query.exclude_seen) == (
        3,
        ["a", "b"],
        ["c"],
        False,
    )
    assert parse_query(RecommendationQuery, QueryParams("")) == RecommendationQuery()


def test_a_single_valued_parameter_given_twice_is_refused_not_last_wins() -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_query(RecommendationQuery, QueryParams("k=5&k=500&exclude=a&exclude=b"))
    (error,) = caught.value.errors()
    assert error["loc"] == ("query", "k") and "given 2 times" in error["msg"]


@pytest.mark.parametrize("written", ["5.0", "+5", " 5", "5_0", "٥"])
def test_an_integer_is_written_in_digits(written: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_query(RecommendationQuery, QueryParams({"k": written}))
    assert caught.value.errors()[0]["loc"] == ("query", "k")


def test_a_bad_value_is_a_validation_error_located_in_the_query() -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_query(RecommendationQuery, QueryParams("k=ten&model="))
    locations = sorted(e["loc"] for e in caught.value.errors())
    assert locations == [("query", "k"), ("query", "model")]


def test_every_field_is_documented_as_an_optional_query_parameter() -> None:
    parameters = openapi_parameters(RecommendationQuery)["parameters"]
    assert [p["name"] for p in parameters] == list(RecommendationQuery.model_fields)
    assert all(p["in"] == "query" and p["required"] is False for p in parameters)
    k = next(p for p in parameters if p["name"] == "k")
    assert k["schema"] == {"type": "integer", "default": 10} and "max_k" in k["description"]


def test_the_route_documents_its_path_and_query_parameters(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/users/{user_id}/recommendations"]
    names = {(p["name"], p["in"]) for p in operation["get"]["parameters"]}
    assert names == {("user_id", "path")} | {(n, "query") for n in RecommendationQuery.model_fields}


def test_the_route_answers_a_bad_query_with_our_422(client: TestClient) -> None:
    r = client.get("/v1/users/u1/recommendations", params={"k": "ten"})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_request" and body["problems"][0]["field"] == "k"
    assert "request_id" in body
