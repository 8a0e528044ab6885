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
