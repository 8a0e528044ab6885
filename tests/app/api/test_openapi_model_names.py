"""Every field and parameter that names a model lists the registered names in ``/openapi.json``.

A client generated from the document then offers exactly the names the server
can serve or train; the server's own 4xx for another name is unchanged
(``app.schemas_fields.MODEL_ENUM``).
"""

from __future__ import annotations

from typing import Any

from app.main import create_app
from tests.app.conftest import embedded_settings
from training.models import REGISTRY

NAMES = sorted(REGISTRY)


def _enums(schema: Any) -> list[list[str]]:
    """Every ``enum`` inside a schema (through ``anyOf`` and ``items``)."""
    if not isinstance(schema, dict):
        return []
    found = [schema["enum"]] if "enum" in schema else []
    for child in [*schema.get("anyOf", []), schema.get("items")]:
        found += _enums(child)
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
                    assert _enums(parameter["schema"]) == [NAMES], (method, path)
                    checked.append(f"{method} {path} {parameter['name']}")
    for component, schema in document["components"]["schemas"].items():
        for field in ("model", "models"):
            if field in schema.get("properties", {}) and component.endswith(("In", "Request")):
                assert _enums(schema["properties"][field]) == [NAMES], (component, field)
                checked.append(f"{component}.{field}")
    assert len(checked) >= 8, checked  # the serving routes, admin models, retrain, tune, bodies
