"""Path and query parameter types: the body rules of ``app.schemas_fields`` for the URL.

Why: ``GET /v1/users/a%00b/recommendations`` once reached the database with a
NUL in the id (a counted read error, a ``degraded`` answer) and
``GET /admin/jobs/9223372036854775808`` the driver's integer overflow (a 503).
A URL parameter that the database cannot hold is now refused before any
lookup. Lengths and blank ids stay the serving layer's checks (they depend on
settings and have their own error codes).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator
from starlette.convertors import Convertor, register_url_convertor

from app.schemas_fields import DECIMAL_DIGITS, MODEL_ENUM, QueryInt, storable
from app.tune.jobs import TUNE
from training.models import REGISTRY


class IdConvertor(Convertor[str]):
    """``{user_id:id}``: the rest of the path, ``/`` and line breaks included.

    Ids are opaque text: ``team/alice`` and ``a\nb`` are ids a write accepts, so the
    URLs that name them must reach their route. Starlette's ``path`` converter is
    ``.*``, whose dot stops at a newline: ``PUT /v1/items/a%0Ab`` was the router's
    bare 404 (a status the schema does not list; schemathesis found it).
    """

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())

#: Any other text parameter that reaches the database or a lookup (the dashboard's).
StorableText = Annotated[str, AfterValidator(storable)]
#: Any path parameter naming a user, an item or a model.
UserIdPath = Annotated[str, AfterValidator(storable), Path(description="opaque user id")]
ItemIdPath = Annotated[str, AfterValidator(storable), Path(description="opaque item id")]
ModelNamePath = Annotated[
    str,
    AfterValidator(storable),
    Path(description="model name", json_schema_extra=MODEL_ENUM),
]
#: A job id is any integer written in digits, as a query's (``QueryInt``: `` 1`` and ``+1``
#: read as job 1 and ``1_0`` as job 10); one outside int64 names no job (404 like -1,
#: ``routes.admin``).
JobIdPath = Annotated[QueryInt, Path(description="retrain job id")]

#: ``?limit=`` of ``GET /admin/jobs``: digits, as every query integer (``limit=5_0`` read as 50).
JobLimitQuery = Annotated[int, Query(ge=1, le=500, description="jobs per page"), DECIMAL_DIGITS]

#: The models a job can name: the registered ones (retrain jobs; ``POST /admin/retrain``
#: refuses others) and ``tune``, the model of every tune job.
JOB_MODELS = (*sorted(REGISTRY), TUNE)


def _job_model(value: str | None) -> str | None:
    """A name no job can have is refused, as a retrain of it is: the empty list it got
    read as "no jobs of this model", hiding a typo (``?model=eas``). The registry is fixed
    when the server starts, so the schema's enum is the whole truth."""
    if value is not None and value not in JOB_MODELS:
        shown = repr(value) if len(value) <= 64 else f"{value[:64]!r}..."
        raise ValueError(f"unknown model {shown}; known: {', '.join(JOB_MODELS)}")
    return value


#: ``?model=`` of ``GET /admin/jobs``.
JobModelQuery = Annotated[
    str | None,
    AfterValidator(storable),
    AfterValidator(_job_model),
    Query(description="only the jobs of this model", json_schema_extra={"enum": list(JOB_MODELS)}),
]
