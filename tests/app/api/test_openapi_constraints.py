"""``/openapi.json`` states what the server checks where JSON Schema can say it.

Every field and parameter that names a model lists the registered names, rule
query parameters must hold text, ``/admin/tune``'s minimums, a promote version's
form, a catalog attribute's kinds. A
client generated from the document then sends what can work; the server's own
4xx for anything else is unchanged (``app.schemas_fields``).
"""

from __future__ import annotations

from typing import Any

from app.main import create_app
from tests.app.conftest import embedded_settings
from training.models import REGISTRY

NAMES = sorted(REGISTRY)


def _enums(schema: Any, key: str = "enum") -> list[Any]:
    """Every ``key`` (``enum``, ``pattern``, ...) inside a schema (through ``anyOf``, ``items``)."""
    if not isinstance(schema, dict):
        return []
    found = [schema[key]] if key in schema else []
    for child in [*schema.get("anyOf", []), schema.get("items")]:
        found += _enums(child, key)
    return found


def test_model_fields_and_parameters_list_the_registered_names() -> None:
    document = create_app(embedded_settings()).openapi()
    checked: list[str] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                names_a_model = parameter["name"] == "model" or (
                    parameter["name"] == "name" and path.startswith("/admin/models/")
                )
                if names_a_model:
                    # a job's model is a registered one or "tune", the model of tune jobs
                    names = [*NAMES, "tune"] if path == "/admin/jobs" else NAMES
                    assert _enums(parameter["schema"]) == [names], (method, path)
                    checked.append(f"{method} {path} {parameter['name']}")
    for component, schema in document["components"]["schemas"].items():
        for field in ("model", "models"):
            if field in schema.get("properties", {}) and component.endswith(("In", "Request")):
                assert _enums(schema["properties"][field]) == [NAMES], (component, field)
                checked.append(f"{component}.{field}")
    assert len(checked) >= 8, checked  # the serving routes, admin models, retrain, tune, bodies


def test_rule_parameters_must_hold_text_and_tune_models_must_not_be_empty() -> None:
    document = create_app(embedded_settings()).openapi()
    for path in ("/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/similar"):
        parameters = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        for name in ("filter", "boost", "cap"):
            assert _enums(parameters[name]["schema"], "pattern") == [r"\S"], (path, name)
    assert document["components"]["schemas"]["TuneIn"]["properties"]["models"]["minItems"] == 1


def test_tune_minimums_and_promote_versions_are_stated() -> None:
    schemas = create_app(embedded_settings()).openapi()["components"]["schemas"]
    tune = schemas["TuneIn"]["properties"]
    assert tune["budget_minutes"]["minimum"] == 0.5 and tune["trials"]["minimum"] == 1
    version = schemas["PromoteIn"]["properties"]["version"]
    assert _enums(version, "pattern") == ["^[1-9][0-9]{0,17}$"]
    assert _enums(version, "minimum") == [1]


def test_item_attribute_values_are_stated() -> None:
    """Scalars, or a list of one kind (nulls among them): what ``validate_item`` accepts."""
    schemas = create_app(embedded_settings()).openapi()["components"]["schemas"]
    values = schemas["ItemIn"]["properties"]["attributes"]["additionalProperties"]["anyOf"]
    assert values[0] == {"type": ["null", "boolean", "number", "string"]}
    lists = {tuple(v["items"]["type"]) for v in values[1:] if v["type"] == "array"}
    assert lists == {("boolean", "null"), ("number", "null"), ("string", "null")}


#: pydantic's own names of bounds, which JSON Schema does not know (it says ``minimum``...).
_PYDANTIC_BOUNDS = {"ge", "le", "gt", "lt"}


def _untranslated_bounds(schema: Any, where: str = "") -> list[str]:
    """Where a schema holds ``ge`` / ``le`` / ``gt`` / ``lt`` as keywords (property names,
    such as a range rule's ``gt``, are not keywords)."""
    found = []
    if isinstance(schema, dict):
        found += [f"{where}.{key}" for key in _PYDANTIC_BOUNDS & schema.keys()]
        for key, child in schema.items():
            if key == "properties" and isinstance(child, dict):
                for name, prop in child.items():
                    found += _untranslated_bounds(prop, f"{where}.properties.{name}")
            else:
                found += _untranslated_bounds(child, f"{where}.{key}")
    elif isinstance(schema, list):
        for n, child in enumerate(schema):
            found += _untranslated_bounds(child, f"{where}[{n}]")
    return found


def test_bounds_are_json_schemas_minimum_and_maximum() -> None:
    """A boost's ``weight``, ``mmr`` and an experiment's ``window_minutes`` said ``ge`` /
    ``le``: pydantic writes a bound it cannot attach to a JSON Schema type (a union, a
    type with a validator) under its own name, which no schema-driven client reads."""
    document = create_app(embedded_settings()).openapi()
    assert _untranslated_bounds(document) == []
    schemas = document["components"]["schemas"]
    weight = schemas["BoostIn"]["properties"]["weight"]
    assert (weight["minimum"], weight["maximum"]) == (-100, 100)
    (mmr,) = [s for s in schemas["RulesIn"]["properties"]["mmr"]["anyOf"] if "minimum" in s]
    assert (mmr["minimum"], mmr["maximum"]) == (0, 1)
    (window,) = [
        s
        for s in schemas["ExperimentIn"]["properties"]["window_minutes"]["anyOf"]
        if s.get("type") == "number"
    ]
    assert window["maximum"] == 60 * 24 * 30
